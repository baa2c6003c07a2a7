"""Checkpoint rows hold the run's record (the checkpoint document and the run's outputs so
far), whole or as a delta against a base row. Rows written before this migration held the
bare document: each becomes a whole record, its outputs gathered along its lineage."""

import hashlib
import json
import zlib

import django.db.models.deletion
from django.db import migrations, models


def wrap_documents_in_records(apps, schema_editor):
    Checkpoint = apps.get_model("workflows_app", "Checkpoint")
    run_ids = Checkpoint.objects.order_by().values_list("run_id", flat=True).distinct()
    for run_id in run_ids.iterator():
        outputs_at = {}  # checkpoint id -> the run's outputs when it was written
        for row in Checkpoint.objects.filter(run_id=run_id).order_by("created_at").iterator():
            outputs = outputs_at.get(row.previous_id, []) + list(row.outputs or [])
            outputs_at[row.checkpoint_id] = outputs
            try:
                document = json.loads(zlib.decompress(bytes(row.document)).decode("ascii"))
            except (zlib.error, UnicodeDecodeError, ValueError):
                continue  # corrupt already: left as it is, it fails to load with its id
            text = json.dumps({"checkpoint": document, "outputs": outputs},
                              separators=(",", ":")).encode("ascii")
            data = zlib.compress(text, 1)
            Checkpoint.objects.filter(pk=row.pk).update(
                document=data, size_bytes=len(data), json_bytes=len(text),
                content_hash=hashlib.sha256(data).hexdigest())


class Migration(migrations.Migration):

    dependencies = [
        ('workflows_app', '0002_groups'),
    ]

    operations = [
        migrations.AddField(
            model_name='checkpoint',
            name='base',
            field=models.ForeignKey(blank=True, help_text='the row this one is a delta against; empty: stored whole', null=True, on_delete=django.db.models.deletion.RESTRICT, related_name='deltas', to='workflows_app.checkpoint'),
        ),
        migrations.AddField(
            model_name='checkpoint',
            name='chain_position',
            field=models.PositiveIntegerField(default=0, help_text="position in its writer's skip-delta chain (0: stored whole)"),
        ),
        migrations.AlterField(
            model_name='checkpoint',
            name='document',
            field=models.BinaryField(help_text="the run's record as compact JSON (whole, or a delta against base), zlib-compressed"),
        ),
        migrations.AlterField(
            model_name='checkpoint',
            name='json_bytes',
            field=models.PositiveIntegerField(default=0, help_text='bytes of the stored JSON'),
        ),
        migrations.RunPython(wrap_documents_in_records, migrations.RunPython.noop),
    ]
