"""The run page at any length and after resumes: windows of bounded size over one branch's
line, counts that say what exists, and branches marked for what they are."""

import re

import pytest
from django.urls import reverse

from dashboard.run_windows import CHECKPOINTS_SHOWN, EVENTS_SHOWN, TIMELINE_STEPS
from workflows_app import services
from workflows_app.branches import RunLine
from workflows_app.models import Checkpoint, RunBranch

pytestmark = pytest.mark.django_db

ROUNDS = 90  # two supersteps a round: well beyond every window


@pytest.fixture(autouse=True)
def _quiet(quiet_channels):
    """Pages are checked here; their websockets in test_consumers.py."""


@pytest.fixture
def viewer(client, users):
    client.force_login(users.viewer)
    return client


@pytest.fixture
def long_run(execute):
    return execute(services.start_run("long-loop", {"rounds": ROUNDS}))


def _page(client, run, query=""):
    response = client.get(reverse("dashboard:run", args=[run.pk]) + query)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def _oldest_first(numbers):
    """A window's items, which the page lists newest first, in the order they happened."""
    assert numbers == sorted(numbers, reverse=True), numbers
    return numbers[::-1]


def _timeline(html):
    return _oldest_first([int(n) for n in re.findall(r'<li data-superstep="(\d+)"', html)])


def _events(html):
    return _oldest_first([int(n) for n in re.findall(r'<li data-seq="(\d+)"', html)])


def _checkpoint_steps(html):
    return [int(n) for n in re.findall(r'data-superstep="(\d+)" data-kind', html)]


def test_a_long_run_shows_its_newest_windows_and_says_how_much_exists(viewer, long_run):
    html = _page(viewer, long_run)
    newest = long_run.current_superstep
    assert _timeline(html) == list(range(newest - TIMELINE_STEPS + 1, newest + 1))
    events = _events(html)
    total = long_run.events.count()
    assert events == list(range(total - EVENTS_SHOWN + 1, total + 1))
    assert f'<span class="total">{total}</span>' in html
    steps = _checkpoint_steps(html)
    assert len(steps) == CHECKPOINTS_SHOWN and steps[0] == newest and steps == sorted(steps)[::-1]
    assert f"of {long_run.checkpoints.count()}, newest first" in html


def test_earlier_windows_are_reachable_and_the_page_keeps_its_size(viewer, long_run):
    html = _page(viewer, long_run)
    earlier = re.search(r'class="earlier" href="([^"#]+)#timeline-panel', html).group(1)
    older = _timeline(_page(viewer, long_run, earlier.replace("&amp;", "&")))
    assert len(older) == TIMELINE_STEPS and older[-1] == _timeline(html)[0] - 1
    before = re.search(r'class="earlier" href="([^"#]+)#events-panel', html).group(1)
    events = _events(_page(viewer, long_run, before.replace("&amp;", "&")))
    assert len(events) == EVENTS_SHOWN and events[-1] == _events(html)[0] - 1
    page_two = _checkpoint_steps(_page(viewer, long_run, "?cp=2"))
    assert len(page_two) == CHECKPOINTS_SHOWN
    assert page_two[0] < _checkpoint_steps(html)[-1]


def test_jumping_to_a_superstep_shows_it_in_every_window(viewer, long_run):
    html = _page(viewer, long_run, "?at=40")
    assert 40 in _timeline(html) and 'class="done target"' in html
    events = long_run.events.filter(seq__in=_events(html))
    assert events.order_by("seq").first().superstep == 40
    assert 40 in _checkpoint_steps(html)


def test_event_filters_and_bad_numbers(viewer, long_run):
    html = _page(viewer, long_run, "?type=executor_failed")
    assert _events(html) == [] and "matching the filter" in html
    html = _page(viewer, long_run, "?type=superstep_completed&executor=")
    assert set(long_run.events.filter(seq__in=_events(html)).values_list("type", flat=True)) \
        == {"superstep_completed"}
    html = _page(viewer, long_run, "?upto=abc")
    assert "Ignored: upto=&#x27;abc&#x27; is not a whole number" in html
    assert _timeline(html)[-1] == long_run.current_superstep  # fell back to the newest


def test_events_show_time_and_payload(viewer, long_run):
    html = _page(viewer, long_run)
    assert re.search(r'<time datetime="[^"]+">\d\d:\d\d:\d\d\.\d{3}</time> <b>', html)
    assert "<summary>payload</summary>" in html and "__type__" not in html


def _resume_at(run, superstep, execute, user=None):
    """Resume ``run`` from the checkpoint at ``superstep`` on its current line."""
    checkpoint = RunLine(run).checkpoints().get(superstep=superstep, kind="superstep")
    services.resume_run(run.pk, checkpoint.pk, user)
    return execute(run)


def test_a_resume_starts_a_branch_and_the_page_shows_one_line(viewer, execute, users):
    run = execute(services.start_run("long-loop", {"rounds": 30}))  # supersteps 1..60
    run = _resume_at(run, 20, execute, users.operator)
    assert run.branch == 1 and run.status == "completed"
    branch = RunBranch.objects.get(run=run, number=1)
    assert (branch.parent, branch.from_superstep, branch.action.username) == (0, 20, "operator")
    assert set(run.events.filter(seq__gt=branch.first_seq).values_list("branch", flat=True)) == {1}
    assert set(run.checkpoints.filter(superstep__gt=20, branch=1).values_list(
        "superstep", flat=True)) == set(range(21, 61))

    html = _page(viewer, run)
    timeline = _timeline(html)
    assert timeline == sorted(set(timeline))  # each superstep once: no branch mixed in
    steps = _checkpoint_steps(html)
    assert steps == sorted(steps, reverse=True)  # 60, 59, ... never 60 then 20-something
    assert 'data-branch="1" class="current shown"' in html
    assert 'data-branch="0" class="kept"' in html  # kept up to superstep 20, not abandoned
    assert "resumed from superstep 20 of branch 0 by operator" in html

    # The line's counts are those of its rows.
    line = RunLine(run)
    assert line.event_count(run.events.order_by("-seq").first().seq) == line.events().count()
    assert line.checkpoints().filter(branch=0).count() == run.checkpoints.filter(
        branch=0, superstep__lte=20).count()


def test_an_abandoned_branch_is_marked_and_can_be_looked_at(viewer, execute):
    run = execute(services.start_run("long-loop", {"rounds": 30}))
    run = _resume_at(run, 20, execute)
    run = _resume_at(run, 10, execute)  # from branch 1 at 10: that is branch 0's part
    assert run.branch == 2 and RunBranch.objects.get(run=run, number=2).parent == 0
    html = _page(viewer, run)
    assert 'data-branch="1" class="abandoned"' in html
    old = _page(viewer, run, "?branch=1")
    assert "branch 1, an abandoned branch" in old and "Show the current branch" in old
    assert "branch 0, which the run left after superstep 10" in _page(viewer, run, "?branch=0")
    assert _timeline(old)[-1] == 60 and _checkpoint_steps(old)[0] == 60
    line = RunLine(run, 1)
    assert set(line.checkpoints().values_list("branch", flat=True)) == {0, 1}
    # Branch 1's line: branch 0 up to superstep 20, then its own (abandoned) supersteps.
    assert not line.checkpoints().filter(branch=0, superstep__gt=20).exists()
    assert viewer.get(reverse("dashboard:run", args=[run.pk]) + "?branch=7").status_code == 404


def test_checkpoint_rows_name_their_branch(viewer, execute):
    run = execute(services.start_run("long-loop", {"rounds": 5}))
    run = _resume_at(run, 4, execute)
    html = _page(viewer, run)
    assert re.search(r'data-superstep="10" data-kind="superstep" data-branch="1"', html)
    assert re.search(r'data-superstep="4" data-kind="superstep" data-branch="0"', html)
    assert Checkpoint.objects.filter(run=run, branch=0, superstep__gt=4).exists()  # kept, off-line


def test_the_page_is_one_snapshot_of_the_events(long_run):
    """A page reads its windows up to the newest seq it saw first (its socket asks for the
    rest): an event committed while it is built is neither missing nor shown twice."""
    line = RunLine(long_run, upto_seq=10)
    assert list(line.events().order_by("seq").values_list("seq", flat=True)) == list(
        range(1, 11))
