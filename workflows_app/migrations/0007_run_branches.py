"""Branches: a resume starts a new branch of the run (``RunBranch``); every checkpoint and
event records the branch it was written on.

Runs resumed before this migration get their branches from their resume actions, in order:
what was written after a resume belongs to the branch it started."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Max


def branches_from_resumes(apps, schema_editor):
    if schema_editor.connection.alias != "default":
        return  # the channel layer's database holds no runs
    Run = apps.get_model("workflows_app", "Run")
    Checkpoint = apps.get_model("workflows_app", "Checkpoint")
    RunEvent = apps.get_model("workflows_app", "RunEvent")
    RunBranch = apps.get_model("workflows_app", "RunBranch")
    OperatorAction = apps.get_model("workflows_app", "OperatorAction")
    resumed = OperatorAction.objects.filter(kind="resume").exclude(run=None)
    # No ordering: the model orders by created_at, which DISTINCT would take in.
    for run_id in resumed.order_by().values_list("run_id", flat=True).distinct():
        number = 0
        for action in resumed.filter(run_id=run_id).order_by("created_at", "pk"):
            number += 1
            at = action.created_at
            source = Checkpoint.objects.filter(pk=action.checkpoint_id).first()
            parent = source.branch if source else number - 1
            superstep = source.superstep if source else action.detail.get("superstep", 0)
            events = RunEvent.objects.filter(run_id=run_id)
            first_seq = events.filter(created_at__lte=at).aggregate(m=Max("seq"))["m"] or 0
            kept_seq = events.filter(branch=parent, superstep__lte=superstep,
                                     created_at__lte=at).aggregate(m=Max("seq"))["m"] or 0
            events.filter(created_at__gt=at).update(branch=number)
            Checkpoint.objects.filter(run_id=run_id, created_at__gt=at).update(branch=number)
            RunBranch.objects.create(
                run_id=run_id, number=number, parent=parent,
                from_checkpoint_id=action.checkpoint_id, from_superstep=superstep,
                kept_seq=kept_seq, kept_until=source.created_at if source else at,
                first_seq=first_seq, action=action)
        Run.objects.filter(pk=run_id).update(branch=number)


class Migration(migrations.Migration):

    dependencies = [
        ('workflows_app', '0006_drop_restore_from_and_row_outputs'),
    ]

    operations = [
        migrations.CreateModel(
            name='RunBranch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField()),
                ('parent', models.PositiveIntegerField(help_text='the branch it continues from')),
                ('from_checkpoint_id', models.CharField(help_text='the checkpoint it was resumed from', max_length=64)),
                ('from_superstep', models.PositiveIntegerField()),
                ('kept_seq', models.PositiveIntegerField(help_text="the parent's events up to this seq belong to this branch's line")),
                ('kept_until', models.DateTimeField(help_text="the parent's checkpoints up to this time belong to this branch's line")),
                ('first_seq', models.PositiveIntegerField(help_text='its own events have a seq above this')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['run', 'number'],
            },
        ),
        migrations.AddField(
            model_name='checkpoint',
            name='branch',
            field=models.PositiveIntegerField(default=0, help_text="the run's branch it was written on"),
        ),
        migrations.AddField(
            model_name='run',
            name='branch',
            field=models.PositiveIntegerField(default=0, help_text='the branch the run is on: 0 until its first resume, which starts branch 1 (see RunBranch)'),
        ),
        migrations.AddField(
            model_name='runevent',
            name='branch',
            field=models.PositiveIntegerField(default=0, help_text="the run's branch it happened on"),
        ),
        migrations.AddIndex(
            model_name='runevent',
            index=models.Index(fields=['run', 'superstep'], name='runevent_run_superstep'),
        ),
        migrations.AddField(
            model_name='runbranch',
            name='action',
            field=models.ForeignKey(blank=True, help_text='the resume that started it', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='workflows_app.operatoraction'),
        ),
        migrations.AddField(
            model_name='runbranch',
            name='run',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='branches', to='workflows_app.run'),
        ),
        migrations.AddConstraint(
            model_name='runbranch',
            constraint=models.UniqueConstraint(fields=('run', 'number'), name='runbranch_run_number'),
        ),
        # Rows last: PostgreSQL refuses to alter a table whose rows changed in the same
        # transaction.
        migrations.RunPython(branches_from_resumes, migrations.RunPython.noop),
    ]
