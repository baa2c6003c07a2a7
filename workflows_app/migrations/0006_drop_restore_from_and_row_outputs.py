"""Columns nothing reads any more (see 0005): ``Run.restore_from``, whose checkpoint 0005
made the run's head, and ``Checkpoint.outputs``, which a row's record holds."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('workflows_app', '0005_lifecycle_actions'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='checkpoint',
            name='outputs',
        ),
        migrations.RemoveField(
            model_name='run',
            name='restore_from',
        ),
    ]
