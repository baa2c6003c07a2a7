"""The reads every entry point shares (``querysets.py``): their filters, their bounds and
the errors a damaged checkpoint chain gives."""

import hashlib

import pytest
from django.db import connection

from workflows_app import services
from workflows_app.engine import WorkflowCheckpointError
from workflows_app.models import Checkpoint, RegisteredWorkflow, Run, RunEvent
from workflows_app.querysets import SEQ_DIGITS, parse_seq
from workflows_app.row_bytes import encode, pack
from workflows_app.states import RequestStatus, RunStatus

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value, seq", [
    (0, 0), (7, 7), ("12", 12), (" 3 ", 3), ("9" * SEQ_DIGITS, int("9" * SEQ_DIGITS)),
    (10 ** SEQ_DIGITS - 1, 10 ** SEQ_DIGITS - 1),
    ("1" + "0" * SEQ_DIGITS, None), (10 ** SEQ_DIGITS, None), (-1, None), ("-1", None),
    ("abc", None), ("", None), ("١٢", None), (True, None), (None, None), (1.0, None),
])
def test_parse_seq_takes_non_negative_integers_of_bounded_size(value, seq):
    assert parse_seq(value) == seq


def test_filter_by_filters_by_status_and_workflow_newest_first(execute,
                                                               django_assert_num_queries):
    loop = execute(services.start_run("long-loop", {"rounds": 1}))
    review = services.start_run("document-review", {"title": "T"})
    mapped = services.start_run("map-reduce", "a b")
    assert list(Run.objects.filter_by()) == [mapped, review, loop]
    assert list(Run.objects.filter_by(status="queued")) == [mapped, review]
    assert list(Run.objects.filter_by(workflow="long-loop")) == [loop]
    assert list(Run.objects.filter_by(status="queued", workflow="map-reduce")) == [mapped]
    assert list(Run.objects.filter_by(status="", workflow=None)) == [mapped, review, loop]
    with django_assert_num_queries(1):  # what a list shows of each run comes in one query
        assert [(r.workflow.name, r.created_by) for r in Run.objects.filter_by()] == [
            ("map-reduce", None), ("document-review", None), ("long-loop", None)]


def test_events_after_a_seq_and_up_to_one(execute):
    run = execute(services.start_run("long-loop", {"rounds": 1}))
    seqs = list(run.events.values_list("seq", flat=True))
    events = RunEvent.objects.filter(run=run)
    assert [e.seq for e in events.after(2)] == seqs[2:]
    assert [e.seq for e in events.after(2, upto=4)] == [3, 4]
    records = events.after(0, upto=1).records()
    first = run.events.get(seq=1)
    assert records == [{"seq": 1, "type": first.type, "superstep": first.superstep,
                        "branch": 0, "executor_id": first.executor_id, "data": first.data,
                        "created_at": first.created_at.isoformat()}]


def test_undelivered_requests_are_the_open_and_the_answered_not_yet_taken(execute):
    run = execute(services.start_run("document-review", {"title": "T"}))
    request = run.requests.get()
    assert list(run.requests.undelivered()) == [request]
    for status in (RequestStatus.ANSWERED, RequestStatus.CANCELLED):
        run.requests.update(status=status)
        assert list(run.requests.undelivered()) == ([request] if status == "answered" else [])
    run.requests.update(status=RequestStatus.ANSWERED, delivered=True)
    assert not run.requests.undelivered().exists()


def _whole_row(run):
    return Checkpoint.objects.get(run=run, base=None)


def test_a_chain_whose_base_is_gone_names_the_missing_row(execute):
    run = execute(services.start_run("long-loop", {"rounds": 2}))
    head, base = run.head_checkpoint, _whole_row(run)
    # As a damaged database would have it (the foreign key is checked only at commit).
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM workflows_app_checkpoint WHERE checkpoint_id = %s",
                       [base.pk])
    with pytest.raises(WorkflowCheckpointError) as refused:
        Checkpoint.objects.read_record(head.pk)
    assert str(refused.value).endswith(
        f"checkpoint {head.pk} is corrupt: its base {base.pk} is missing")
    base.save(force_insert=True)  # the test database's constraints are checked at the end


@pytest.mark.parametrize("record", [{"outputs": []}, {"checkpoint": {}}, [],
                                    {"checkpoint": [], "outputs": []},
                                    {"checkpoint": {}, "outputs": {}}])
def test_a_record_without_its_checkpoint_document_or_outputs_is_refused(execute, record):
    run = execute(services.start_run("long-loop", {"rounds": 1}))
    whole = _whole_row(run)
    data = pack(encode(record))
    Checkpoint.objects.filter(pk=whole.pk).update(
        document=data, content_hash=hashlib.sha256(data).hexdigest())
    with pytest.raises(WorkflowCheckpointError) as refused:
        Checkpoint.objects.read_record(whole.pk)
    assert str(refused.value) == (f"checkpoint {whole.pk} is corrupt: its record lacks the "
                                  f"checkpoint document or the outputs")


def test_bytes_that_do_not_decompress_are_named_with_the_row_that_needs_them(execute):
    run = execute(services.start_run("long-loop", {"rounds": 1}))
    whole, head = _whole_row(run), run.head_checkpoint
    garbage = b"not a checkpoint"
    Checkpoint.objects.filter(pk=whole.pk).update(
        document=garbage, content_hash=hashlib.sha256(garbage).hexdigest())
    with pytest.raises(WorkflowCheckpointError) as refused:
        Checkpoint.objects.read_record(head.pk)
    assert str(refused.value).startswith(
        f"checkpoint {whole.pk} (a base of checkpoint {head.pk}) is corrupt: ")


def test_a_run_without_checkpoints_has_no_restore_bytes():
    from workflows_app.checkpoint_rows import bytes_stored
    services.sync_workflows()
    run = Run.objects.create(workflow=RegisteredWorkflow.objects.get(name="long-loop"),
                             status=RunStatus.CANCELLED)
    assert bytes_stored(run) == 0
    other = services.start_run("long-loop", {"rounds": 1})
    from workflows_app.worker import RunExecution
    RunExecution(other.pk).execute()
    assert bytes_stored(other) == sum(Checkpoint.objects.filter(run=other).values_list(
        "size_bytes", flat=True)) > 0
    assert bytes_stored(run) == 0
