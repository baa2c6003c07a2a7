"""The management commands: the same jobs as the dashboard, from a shell."""

import json

import pytest
from django.core.management import CommandError, call_command

from workflows_app.models import Run

pytestmark = pytest.mark.django_db


def test_start_run_prints_the_id_and_refuses_bad_input(capsys):
    call_command("start_run", "long-loop", input='{"rounds": 2}')
    run_id = capsys.readouterr().out.strip()
    assert Run.objects.get(pk=run_id).status == "queued"
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("start_run", "long-loop", input="{rounds")
    with pytest.raises(CommandError, match="input.rounds"):
        call_command("start_run", "long-loop", input='{"rounds": "x"}')
    with pytest.raises(CommandError, match="no workflow named 'nope'"):
        call_command("start_run", "nope", input="{}")
    assert Run.objects.count() == 1


def test_list_runs_as_json_lines(capsys):
    call_command("start_run", "map-reduce", input='"a b"')
    capsys.readouterr()
    call_command("list_runs", json=True, status="queued")
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["workflow"] for r in rows] == ["map-reduce"]


def test_export_then_import_through_files(execute, tmp_path, capsys):
    from workflows_app import services
    run = execute(services.start_run("document-review", {"title": "Files"}))
    path = tmp_path / "cp.json"
    call_command("export_checkpoint", run.head_checkpoint_id, output=str(path))
    assert json.loads(path.read_text())["workflow"] == "document-review"
    capsys.readouterr()
    call_command("import_checkpoint", str(path))  # where it was written: a new run, a copy
    imported = Run.objects.get(pk=capsys.readouterr().out.strip())
    assert imported.pk != run.pk and imported.workflow.name == "document-review"
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_checkpoint", str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="not found"):
        call_command("export_checkpoint", "nope")
