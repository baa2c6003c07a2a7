"""Workflows shared by the engine tests.

Every ``build_*`` function is a factory: each call returns a new, independent instance of the
same definition (new executor objects, same ids, types and edges), which is what rehydrating a
checkpoint into "a new workflow instance" needs.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Never

from pydantic import BaseModel

from workflows_app.engine import (Case, Default, Executor, FunctionExecutor, WorkflowBuilder,
                                  WorkflowContext, WorkflowEvent, handler,
                                  register_checkpoint_type, response_handler)


# --------------------------------------------------------------------------- helpers
def types_of(events: list[WorkflowEvent]) -> list[str]:
    """The ``type`` of each event, in order."""
    return [event.type for event in events]


def checkpoint_infos(events: list[WorkflowEvent]) -> list[Any]:
    """The ``CheckpointInfo`` carried by each ``superstep_completed`` event, in order."""
    return [event.checkpoint for event in events if event.type == "superstep_completed"]


class Sink(Executor):
    """Accepts anything; records it and yields ``(id, message)``."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.received: list[Any] = []

    @handler
    async def take(self, message: Any, ctx: WorkflowContext[Never, tuple]) -> None:
        self.received.append(message)
        await ctx.yield_output((self.id, message))


# --------------------------------------------------------------------------- ping-pong
@dataclass
class Serve:
    """ping -> pong."""

    n: int


@dataclass(frozen=True)
class Return:
    """pong -> ping; carries pong's hit count so pong's state shows in the output."""

    n: int
    pong_hits: int


class Pinger(Executor):
    """State-key hooks: ``on_checkpointing`` + ``queue_state_update`` / ``read_state``."""

    def __init__(self, id: str = "ping", limit: int = 6) -> None:
        super().__init__(id)
        self.limit = limit
        self.seen: list[int] = []

    @handler
    async def start(self, n: int, ctx: WorkflowContext[Serve, dict]) -> None:
        await self._hit(n, None, ctx)

    @handler
    async def back(self, ball: Return, ctx: WorkflowContext[Serve, dict]) -> None:
        await self._hit(ball.n, ball.pong_hits, ctx)

    async def _hit(self, n: int, pong_hits: int | None, ctx: WorkflowContext) -> None:
        self.seen.append(n)
        if n >= self.limit:
            await ctx.yield_output({"ping": list(self.seen), "pong_hits": pong_hits,
                                    "last": await ctx.get_shared_state("last")})
        else:
            await ctx.send_message(Serve(n + 1))

    async def on_checkpointing(self, ctx: WorkflowContext) -> None:
        await ctx.queue_state_update("seen", list(self.seen))

    async def on_checkpoint_restored(self, ctx: WorkflowContext) -> None:
        self.seen = list(await ctx.read_state("seen", []))


class Ponger(Executor):
    """State-dict hooks (MAF Python's style): ``on_checkpoint_save`` /
    ``on_checkpoint_restore``. With ``fail_at``, raises once when served that number (a
    superstep that fails, then succeeds on retry)."""

    def __init__(self, id: str = "pong", fail_at: int | None = None) -> None:
        super().__init__(id)
        self.hits = 0
        self.fail_at = fail_at
        self.failures_left = 1 if fail_at is not None else 0

    @handler
    async def serve(self, ball: Serve, ctx: WorkflowContext[Return]) -> None:
        if ball.n == self.fail_at and self.failures_left:
            self.failures_left -= 1
            await ctx.set_shared_state("doomed", True)  # staged, must be discarded
            raise RuntimeError(f"pong dropped ball {ball.n}")
        self.hits += 1
        await ctx.set_shared_state("last", ball.n)
        await ctx.send_message(Return(ball.n + 1, self.hits))

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"hits": self.hits}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.hits = state.get("hits", 0)


# Uninterrupted ``build_pingpong().run(0)`` with limit 6: supersteps 1..7, one output.
PINGPONG_SUPERSTEPS = 7
PINGPONG_OUTPUT = {"ping": [0, 2, 4, 6], "pong_hits": 3, "last": 5}


def build_pingpong(storage: Any = None, *, limit: int = 6, fail_at: int | None = None,
                   max_iterations: int = 100, name: str = "pingpong"):
    ping, pong = Pinger(limit=limit), Ponger(fail_at=fail_at)
    return (WorkflowBuilder(name=name, start_executor=ping, checkpoint_storage=storage,
                            max_iterations=max_iterations)
            .add_edge(ping, pong).add_edge(pong, ping).build())


# --------------------------------------------------------------------------- fan-out / fan-in
async def _split(text: str, ctx: WorkflowContext[str]) -> None:
    await ctx.send_message(text)


async def _upper(text: str, ctx: WorkflowContext[str]) -> None:
    await ctx.send_message(text.upper())


async def _relay(text: str, ctx: WorkflowContext[str]) -> None:
    await ctx.send_message(text)


async def _lower(text: str, ctx: WorkflowContext[str]) -> None:
    await ctx.send_message(text.lower())


class Joiner(Executor):
    """The fan-in target: receives one list holding every source's messages."""

    def __init__(self, id: str = "join") -> None:
        super().__init__(id)
        self.batches: list[list[str]] = []

    @handler
    async def join(self, parts: list[str], ctx: WorkflowContext[Never, list]) -> None:
        self.batches.append(parts)
        await ctx.yield_output(parts)


def build_fan_in(storage: Any = None, name: str = "fan_in"):
    """split -> fan-out [upper, relay]; relay -> lower; fan-in [upper, lower] -> join.

    ``upper`` delivers to the fan-in in superstep 2, ``lower`` in superstep 3, so the
    checkpoint of superstep 2 holds a partial fan-in buffer. Output: ``[TEXT, text]``.
    """
    split = FunctionExecutor(_split, id="split")
    upper = FunctionExecutor(_upper, id="upper")
    relay = FunctionExecutor(_relay, id="relay")
    lower = FunctionExecutor(_lower, id="lower")
    join = Joiner()
    return (WorkflowBuilder(name=name, start_executor=split, checkpoint_storage=storage)
            .add_fan_out_edges(split, [upper, relay])
            .add_edge(relay, lower)
            .add_fan_in_edges([upper, lower], join)
            .build())


# --------------------------------------------------------------------------- requests
@dataclass
class ApprovalRequest:
    topic: str
    draft: str


class Approver(Executor):
    """Asks one yes/no question per topic; yields the decisions once all are answered.

    Keeps the decisions with MAF-style hooks. With ``notify``, also sends a note onward, so
    messages and requests are pending at the same time.
    """

    def __init__(self, id: str = "approver", topics: tuple[str, ...] = ("legal", "finance"),
                 notify: bool = False) -> None:
        super().__init__(id)
        self.topics = topics
        self.notify = notify
        self.decisions: dict[str, bool] = {}

    @handler
    async def ask(self, draft: str, ctx: WorkflowContext[str, Never]) -> None:
        for topic in self.topics:
            await ctx.request_info(ApprovalRequest(topic, draft), bool, request_id=f"{topic}-{draft}")
        if self.notify:
            await ctx.send_message(f"awaiting {draft}")

    @response_handler
    async def decided(self, request: ApprovalRequest, approved: bool,
                      ctx: WorkflowContext[Never, dict]) -> None:
        self.decisions[request.topic] = approved
        if len(self.decisions) == len(self.topics):
            await ctx.yield_output({"draft": request.draft, "decisions": dict(self.decisions)})

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"decisions": dict(self.decisions)}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.decisions = dict(state.get("decisions", {}))


def build_approval(storage: Any = None, *, topics: tuple[str, ...] = ("legal", "finance"),
                   notify: bool = False, name: str = "approval"):
    """Start with a draft (str); request ids are ``"<topic>-<draft>"``."""
    approver = Approver(topics=topics, notify=notify)
    builder = WorkflowBuilder(name=name, start_executor=approver, checkpoint_storage=storage)
    if notify:
        builder.add_edge(approver, Sink("notifier"))
    return builder.build()


# --------------------------------------------------------------------------- routing graphs
async def _forward_int(n: int, ctx: WorkflowContext[int]) -> None:
    await ctx.send_message(n)


def is_negative(n: int) -> bool:
    return n < 0


def is_zero(n: int) -> bool:
    return n == 0


def build_switch(storage: Any = None, *, with_default: bool = True):
    """router -> Case(is_negative: negative), Case(is_zero: zero), Default(positive)."""
    router = FunctionExecutor(_forward_int, id="router")
    cases: list[Any] = [Case(is_negative, Sink("negative")), Case(is_zero, Sink("zero"))]
    if with_default:
        cases.append(Default(Sink("positive")))
    return (WorkflowBuilder(name="switch", start_executor=router, checkpoint_storage=storage)
            .add_switch_case_edge_group(router, cases).build())


def select_parity(n: int, target_ids: list[str]) -> list[str]:
    """even/odd by parity, plus "big" for numbers over 100."""
    chosen = ["even" if n % 2 == 0 else "odd"]
    if n > 100:
        chosen.append("big")
    return chosen


def build_multi_selection(storage: Any = None):
    source = FunctionExecutor(_forward_int, id="source")
    return (WorkflowBuilder(name="multi", start_executor=source, checkpoint_storage=storage)
            .add_multi_selection_edge_group(source, [Sink("even"), Sink("odd"), Sink("big")],
                                            select_parity)
            .build())


def at_most_ten(n: int) -> bool:
    return n <= 10


def over_ten(n: int) -> bool:
    return n > 10


def build_conditional(storage: Any = None):
    """source -> small if n <= 10; source -> large if n > 10."""
    source = FunctionExecutor(_forward_int, id="source")
    return (WorkflowBuilder(name="conditional", start_executor=source, checkpoint_storage=storage)
            .add_edge(source, Sink("small"), condition=at_most_ten)
            .add_edge(source, Sink("large"), condition=over_ten)
            .build())


async def _exclaim(text: str, ctx: WorkflowContext[str]) -> None:
    await ctx.send_message(text + "!")


def build_chain(storage: Any = None):
    """upper -> exclaim -> echo (a Sink): "hi" gives ("echo", "HI!")."""
    upper = FunctionExecutor(_upper, id="upper")
    exclaim = FunctionExecutor(_exclaim, id="exclaim")
    return (WorkflowBuilder(name="chain", start_executor=upper, checkpoint_storage=storage)
            .add_chain([upper, exclaim, Sink("echo")]).build())


# --------------------------------------------------------------------------- encodable values
@register_checkpoint_type
class Color(enum.Enum):
    RED = "red"
    GREEN = 2


@register_checkpoint_type
@dataclass
class Point:
    x: float
    y: float


@register_checkpoint_type
@dataclass
class Line:
    start: Point
    end: Point
    labels: list[str] = field(default_factory=list)
    length: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.length = abs(self.end.x - self.start.x) + abs(self.end.y - self.start.y)


@register_checkpoint_type
@dataclass(frozen=True)
class Tag:
    name: str
    color: Color


@register_checkpoint_type
class Address(BaseModel):
    city: str
    zip_code: str


@register_checkpoint_type
class Profile(BaseModel):
    name: str
    born: datetime.date
    address: Address
    tags: list[str] = []


_UTC = datetime.timezone.utc
_IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))

# (label, value): every kind of value a checkpoint can hold, nested where it matters.
ENCODABLE_SAMPLES: list[tuple[str, Any]] = [
    ("none", None), ("bool", True), ("int", -7), ("big int", 2**80), ("float", 1.25),
    ("str", "héllo ✓"), ("empty list", []), ("empty dict", {}),
    ("nested list", [1, [2, [3, "x"]], []]),
    ("nested dict", {"a": {"b": [1, {"c": None}]}, "d": 0.5}),
    ("int keys", {1: "one", 2: {3: "three"}}),
    ("tuple keys", {(1, "a"): "pair", (): "empty"}),
    ("dict holding the tag key", {"__type__": "dataclass", "class": "os.system"}),
    ("tuple", (1, "a", (2.5, None))), ("empty tuple", ()),
    ("set", {1, 2, 3}), ("empty set", set()), ("frozenset", frozenset({"x", "y"})),
    ("bytes", b"\x00\xff binary"),
    ("naive datetime", datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)),
    ("utc datetime", datetime.datetime(2024, 1, 1, 12, 0, tzinfo=_UTC)),
    ("offset datetime", datetime.datetime(2024, 6, 1, 8, 30, tzinfo=_IST)),
    ("date", datetime.date(1999, 12, 31)), ("time", datetime.time(7, 15, 30)),
    ("timedelta", datetime.timedelta(days=-1, seconds=5, microseconds=7)),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("decimal", decimal.Decimal("1.10")), ("enum", Color.RED), ("enum int value", Color.GREEN),
    ("dataclass", Point(1.0, -2.5)),
    ("nested dataclass", Line(Point(0, 0), Point(3, 4), ["a"])),
    ("frozen dataclass", Tag("urgent", Color.GREEN)),
    ("pydantic", Profile(name="Ada", born=datetime.date(1815, 12, 10),
                         address=Address(city="London", zip_code="W1"), tags=["math"])),
    ("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf),
    ("mixed", {"when": datetime.date(2020, 1, 1), "items": [Point(1, 2), {Color.RED}, (b"x",)]}),
]


def same(a: Any, b: Any) -> bool:
    """Deep equality that also compares types (a tuple is not a list) and treats nan == nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    if isinstance(a, datetime.datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return a == b
