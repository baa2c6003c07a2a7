"""The run page's windows onto a run's history: its superstep timeline, event log and
checkpoint table show a fixed number of items of one branch's line (``RunLine``), newest
first by default, with links to earlier and later items and a jump to a superstep. The page
therefore has the same size, and costs about the same to serve, at superstep 10 and at
superstep 10,000.

What a page shows is in its query string (``RunPageView``), so every window has an address
an operator can share, and the panels the page re-fetches live keep the window they show.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Page, Paginator

from workflows_app.branches import RunLine
from workflows_app.models import PendingRequest, Run
from workflows_app.querysets import parse_seq
from workflows_app.states import RunStatus

from .values import plain_json

TIMELINE_STEPS = 50  # supersteps in the timeline window
EVENTS_SHOWN = 100  # events in the event log window
CHECKPOINTS_SHOWN = 20  # rows of the checkpoint table
PAYLOAD_SHOWN = 2000  # characters of an event's payload shown inline; the API has it whole
TIMELINE_TYPES = ("superstep_started", "superstep_completed", "executor_invoked",
                  "executor_failed", "failed")
# The event types a filter offers (the engine's, as the worker records them).
EVENT_TYPES = ("started", "status", "superstep_started", "executor_invoked",
               "executor_completed", "executor_failed", "superstep_completed", "request_info",
               "output", "warning", "stopped", "failed")


@dataclass(frozen=True)
class RunPageView:
    """What the run page is asked to show (from its query string; a value that is not a
    number is ignored, and the window falls back to the newest items).

    - ``branch``: the branch whose line is shown (default: the run's current one);
    - ``upto``: the newest superstep of the timeline window;
    - ``before`` / ``after``: the event log shows the events just before / after a ``seq``;
    - ``event_type`` / ``executor``: only events of that type / executor;
    - ``cp``: the checkpoint table's page (1: the newest);
    - ``at``: jump to a superstep: every window shows it.
    """

    branch: int | None = None
    upto: int | None = None
    before: int | None = None
    after: int | None = None
    event_type: str = ""
    executor: str = ""
    cp: int | None = None
    at: int | None = None
    ignored: list[str] = field(default_factory=list, compare=False)

    NUMBERS = ("branch", "upto", "before", "after", "cp", "at")

    @classmethod
    def from_query(cls, query: Any) -> "RunPageView":
        values: dict[str, Any] = {}
        ignored = []
        for name in cls.NUMBERS:
            text = query.get(name, "")
            if text:
                number = parse_seq(text)
                if number is None:
                    ignored.append(f"{name}={text[:20]!r} is not a whole number")
                else:
                    values[name] = number
        return cls(**values, event_type=query.get("type", "")[:40],
                   executor=query.get("executor", "")[:100], ignored=ignored)

    def url(self, **changes: Any) -> str:
        """This view's query string with ``changes`` (None drops a parameter), e.g.
        ``?branch=1&upto=400``."""
        view = replace(self, **changes)
        params = {"branch": view.branch, "upto": view.upto, "before": view.before,
                  "after": view.after, "type": view.event_type, "executor": view.executor,
                  "cp": view.cp, "at": view.at}
        return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})

    def newest(self) -> "RunPageView":
        """The same branch and filters, every window at its newest."""
        return replace(self, upto=None, before=None, after=None, cp=None, at=None)


# --------------------------------------------------------------------------- timeline
@dataclass
class TimelineWindow:
    items: list[dict[str, Any]]
    first: int  # the line's first superstep
    newest: int  # its newest
    low: int  # the window: supersteps low..high
    high: int
    earlier_url: str = ""
    later_url: str = ""
    newest_url: str = ""

    @property
    def following(self) -> bool:
        """Shows the newest supersteps: live ones are added to it."""
        return self.high >= self.newest

    @property
    def total(self) -> int:
        return self.newest - self.first + 1 if self.newest else 0


def newest_superstep(line: RunLine) -> int:
    """The line's newest superstep with an event (0 before the first)."""
    found = line.events().exclude(superstep=None).order_by("-superstep").values_list(
        "superstep", flat=True).first()
    return found or 0


def timeline(line: RunLine, view: RunPageView, newest: int) -> TimelineWindow:
    """The ``TIMELINE_STEPS`` supersteps of the line ending at ``view.upto`` (or around
    ``view.at``; by default the newest): for each, the executors that ran, the messages
    they handled, how long it took and how it ended. A sub-workflow's inner executors
    (``review/writer``) count in the parent superstep they ran inside: its messages are
    every invocation in it, the inner ones included."""
    first = line.events().exclude(superstep=None).filter(superstep__gt=0).order_by(
        "superstep").values_list("superstep", flat=True).first() or 0
    if view.at is not None:
        high = view.at + TIMELINE_STEPS // 2
    else:
        high = view.upto if view.upto is not None else newest
    high = max(min(high, newest), min(first + TIMELINE_STEPS - 1, newest))
    low = max(first, high - TIMELINE_STEPS + 1)
    steps: dict[int, dict[str, Any]] = {}
    rows = line.events().filter(superstep__gte=low, superstep__lte=high,
                                type__in=TIMELINE_TYPES).order_by("seq").values_list(
        "superstep", "type", "executor_id", "created_at")
    for superstep, kind, executor, at in rows:
        step = steps.setdefault(superstep, {"superstep": superstep, "executors": [],
                                            "messages": 0, "started": None, "took_ms": None,
                                            "state": "running"})
        if kind == "superstep_started":
            step["started"] = at
        elif kind == "executor_invoked":
            step["messages"] += 1  # one invocation per message delivered
            if executor not in step["executors"]:
                step["executors"].append(executor)
        elif kind == "superstep_completed":
            step["state"] = "done"
            if step["started"] is not None:
                step["took_ms"] = max(0, round((at - step["started"]).total_seconds() * 1000))
        elif kind in ("executor_failed", "failed"):
            step["state"] = "failed"
    window = TimelineWindow(items=[steps[s] for s in sorted(steps)], first=first,
                            newest=newest, low=low, high=high)
    if low > first:
        window.earlier_url = view.url(upto=low - 1, at=None)
    if high < newest:
        window.later_url = view.url(upto=min(newest, high + TIMELINE_STEPS), at=None)
        window.newest_url = view.url(upto=None, at=None)
    return window


# --------------------------------------------------------------------------- event log
@dataclass
class EventWindow:
    items: list[dict[str, Any]]
    total: int  # events of the line (matching the filters)
    following: bool  # shows the newest events: live ones are added to it
    earlier_url: str = ""
    later_url: str = ""
    newest_url: str = ""
    types: tuple[str, ...] = EVENT_TYPES
    executors: list[str] = field(default_factory=list)

    @property
    def first_seq(self) -> int | None:
        return self.items[0]["event"].seq if self.items else None

    @property
    def last_seq(self) -> int | None:
        return self.items[-1]["event"].seq if self.items else None


def event_window(line: RunLine, view: RunPageView, last_seq: int,
                 executors: list[str]) -> EventWindow:
    """``EVENTS_SHOWN`` events of the line, oldest first: the newest by default, those
    before or after a ``seq``, or those from a superstep on."""
    events = line.events()
    filtered = bool(view.event_type or view.executor)
    if view.event_type:
        events = events.filter(type=view.event_type)
    if view.executor:
        events = events.filter(executor_id=view.executor)
    rows = events.order_by("seq")
    if view.at is not None:
        start = line.events().filter(superstep__gte=view.at).order_by("seq").values_list(
            "seq", flat=True).first()
        shown = list(rows.filter(seq__gte=start)[:EVENTS_SHOWN]) if start is not None else []
    elif view.after is not None:
        shown = list(rows.filter(seq__gt=view.after)[:EVENTS_SHOWN])
    elif view.before is not None:
        shown = list(events.filter(seq__lt=view.before).order_by("-seq")[:EVENTS_SHOWN])[::-1]
    else:
        shown = list(events.order_by("-seq")[:EVENTS_SHOWN])[::-1]
    total = events.count() if filtered else line.event_count(last_seq)
    window = EventWindow(items=[_event_item(event) for event in shown], total=total,
                         following=False, executors=executors)
    base = replace(view, at=None, before=None, after=None)
    if shown and events.filter(seq__lt=shown[0].seq).exists():
        window.earlier_url = base.url(before=shown[0].seq)
    newer = shown and events.filter(seq__gt=shown[-1].seq).exists()
    if newer:
        window.later_url = base.url(after=shown[-1].seq)
        window.newest_url = base.url()
    window.following = not newer and view.at is None and view.before is None
    return window


def _event_item(event: Any) -> dict[str, Any]:
    payload = "" if event.data in (None, {}, []) else plain_json(event.data, indent=2)
    return {"event": event, "payload": payload[:PAYLOAD_SHOWN],
            "payload_cut": max(len(payload) - PAYLOAD_SHOWN, 0)}


# --------------------------------------------------------------------------- checkpoints
def checkpoint_page(line: RunLine, view: RunPageView) -> Page:
    """A page of the line's checkpoints, newest first (the one at ``view.at`` on it)."""
    checkpoints = line.checkpoints().order_by("-created_at").only(
        "checkpoint_id", "superstep", "branch", "kind", "created_at", "size_bytes",
        "json_bytes", "pending_request_count", "previous_id")
    number = view.cp or 1
    if view.at is not None:
        target = line.checkpoints().filter(superstep__lte=view.at).order_by(
            "-superstep", "-created_at").values_list("created_at", flat=True).first()
        if target is not None:
            number = checkpoints.filter(created_at__gt=target).count() // CHECKPOINTS_SHOWN + 1
    page = Paginator(checkpoints, CHECKPOINTS_SHOWN).get_page(number)
    base = replace(view, at=None)
    page.earlier_url = base.url(cp=page.next_page_number()) if page.has_next() else ""
    page.later_url = base.url(cp=page.previous_page_number()) if page.has_previous() else ""
    page.newest_url = base.url(cp=None) if page.number > 1 else ""
    return page


# --------------------------------------------------------------------------- the graph
def executor_states(line: RunLine, run: Run, newest: int,
                    open_requests: list[PendingRequest]) -> dict[str, str]:
    """Each executor's state as the graph shows it: ``running`` (handling a message now),
    ``waiting`` (on an open request), ``done`` (ran in the newest superstep), ``failed``
    (failed in it); any other executor is idle.

    Inner executors of a sub-workflow are keyed by their path (``review/writer``), as the
    engine names them in the events it passes up. A request made inside a sub-workflow
    marks both the sub-workflow's box (its source, which takes the answer) and the inner
    executor that asked (the request's ``request_info`` row records that one)."""
    states: dict[str, str] = {}
    if newest:
        rows = line.events().filter(superstep=newest, type__in=(
            "executor_invoked", "executor_completed", "executor_failed")).order_by(
            "seq").values_list("type", "executor_id")
        for kind, executor in rows:
            states[executor] = {"executor_invoked": "running", "executor_completed": "done",
                                "executor_failed": "failed"}[kind]
    if run.status != RunStatus.RUNNING or not line.is_current:
        # Nothing runs now: an executor left "running" was cut off (a stop, a crash).
        states = {e: ("idle" if s == "running" else s) for e, s in states.items()}
    if line.is_current:
        inner: set[str] = set()
        for pending in open_requests:
            states[pending.source_executor_id] = "waiting"
            if pending.request_id.startswith(pending.source_executor_id + "/"):
                inner.add(pending.request_id)
        if inner:  # only a sub-workflow's requests cost this look-up
            for origin in _request_origins(line, inner):
                states[origin] = "waiting"
    return states


def _request_origins(line: RunLine, request_ids: set[str]) -> set[str]:
    """The executors (paths) that made these requests, from their ``request_info`` rows:
    the worker records the inner executor there, while the ``PendingRequest`` row keeps
    the sub-workflow's executor, which takes the answer."""
    origins: set[str] = set()
    found: set[str] = set()
    rows = line.events().filter(type="request_info", executor_id__contains="/").order_by(
        "-seq").values_list("executor_id", "data")
    for executor, data in rows.iterator():
        request_id = data.get("request_id") if isinstance(data, dict) else None
        if request_id in request_ids and request_id not in found:
            found.add(request_id)
            origins.add(executor)
            if found == request_ids:
                break
    return origins
