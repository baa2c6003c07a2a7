"""The run lifecycle's changes to the schema:

- the ``Workflow`` model is named ``RegisteredWorkflow`` (its table, and the permissions
  groups hold, keep their meaning: the table name stays, the permission codenames follow);
- a resume or a rehydrate makes the chosen checkpoint the run's head (where it continues);
  one queued before this migration keeps its checkpoint as the head, and 0006 drops
  ``Run.restore_from`` (and ``Checkpoint.outputs``: a row's record holds the outputs);
- ``OperatorAction``, the activity trail.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

RENAMED_PERMISSIONS = ["add", "change", "delete", "view"]


def restore_points_to_heads(apps, schema_editor):
    if schema_editor.connection.alias != "default":
        return  # the channel layer's database holds no runs
    Run = apps.get_model("workflows_app", "Run")
    for run in Run.objects.exclude(restore_from=None).select_related("restore_from"):
        Run.objects.filter(pk=run.pk).update(head_checkpoint=run.restore_from_id,
                                             current_superstep=run.restore_from.superstep)


def heads_to_restore_points(apps, schema_editor):
    pass  # the heads stay valid restore points


def rename_permissions(apps, schema_editor, old="workflow", new="registeredworkflow"):
    if schema_editor.connection.alias != "default":
        return  # the channel layer's database holds no users
    Permission = apps.get_model("auth", "Permission")
    for action in RENAMED_PERMISSIONS:
        Permission.objects.filter(content_type__app_label="workflows_app",
                                  codename=f"{action}_{old}").update(codename=f"{action}_{new}")


def unrename_permissions(apps, schema_editor):
    rename_permissions(apps, schema_editor, old="registeredworkflow", new="workflow")


class Migration(migrations.Migration):

    dependencies = [
        ('workflows_app', '0004_document_zstandard'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ('auth', '0012_alter_user_first_name_max_length'),
    ]

    operations = [
        # The table keeps its name: set it before the rename, which then moves nothing.
        migrations.AlterModelTable(
            name='workflow',
            table='workflows_app_workflow',
        ),
        migrations.RenameModel(
            old_name='Workflow',
            new_name='RegisteredWorkflow',
        ),
        migrations.AlterModelOptions(
            name='registeredworkflow',
            options={'ordering': ['name'], 'verbose_name': 'workflow'},
        ),
        migrations.AlterField(
            model_name='run',
            name='head_checkpoint',
            field=models.ForeignKey(blank=True, db_index=False, help_text='where the run continues: its newest checkpoint, or the one it was resumed or rehydrated from; empty: it starts from its input', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='workflows_app.checkpoint'),
        ),
        migrations.CreateModel(
            name='OperatorAction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('start', 'Started'), ('resume', 'Resumed'), ('rehydrate', 'Rehydrated'), ('cancel', 'Cancelled'), ('answer', 'Answered'), ('import', 'Imported'), ('prune', 'Pruned')], max_length=16)),
                ('username', models.CharField(blank=True, max_length=150)),
                ('checkpoint_id', models.CharField(blank=True, max_length=64)),
                ('detail', models.JSONField(blank=True, default=dict, help_text='what the action took or changed, e.g. the answer')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('request', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='actions', to='workflows_app.pendingrequest')),
                ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='actions', to='workflows_app.run')),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at'],
                'indexes': [models.Index(fields=['run', '-created_at'], name='action_run_created'), models.Index(fields=['kind', '-created_at'], name='action_kind_created')],
            },
        ),
        # Data last: on PostgreSQL, a table whose rows this transaction changed cannot be altered
        # in it (pending trigger events), so the columns go in 0006.
        migrations.RunPython(rename_permissions, unrename_permissions),
        migrations.RunPython(restore_points_to_heads, heads_to_restore_points),
    ]
