"""The workflows Stepstone ships with, registered for the dashboard on first start.

- ``document-review``: a draft goes to a human for approval; rejected drafts are revised and
  reviewed again (request/response, a loop).
- ``long-loop``: two executors count to N keeping their state through the checkpoint hooks;
  it can be told to fail at a given tick, once, to show resuming from a checkpoint.
- ``map-reduce``: a text is split, four mappers count words in parallel (fan-out), a reducer
  merges their counts (fan-in).
- ``ticket-router``: a switch-case group routes tickets by priority and topic; the desks read
  the service levels the triage step put in shared state.
- ``document-pipeline``: an intake step, then the document-review workflow as one step (a
  sub-workflow: its review requests are the pipeline run's), then an archive step.
"""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Never

from pydantic import Field

from .engine import (Case, Default, Executor, Workflow, WorkflowBuilder, WorkflowContext,
                     WorkflowExecutor, handler, response_handler)
from .registry import register_workflow


# Ranges of the inputs and answers people type (refused by name beyond them, and the start
# forms' fields carry them as min/max): a title is a line, a body a document.
Title = Annotated[str, Field(min_length=1, max_length=200)]
Body = Annotated[str, Field(max_length=100_000)]


# --------------------------------------------------------------------------- document review
@dataclass
class ReviewInput:
    title: Title
    body: Body = ""


@dataclass
class Draft:
    title: str
    body: str
    revision: int = 1


@dataclass
class ReviewRequest:
    """What the reviewer sees."""

    title: str
    body: str
    revision: int


@dataclass
class ReviewDecision:
    """The reviewer's answer."""

    approved: bool
    comment: Annotated[str, Field(max_length=10_000)] = ""


class Writer(Executor):
    @handler
    async def write(self, request: ReviewInput, ctx: WorkflowContext[Draft]) -> None:
        body = request.body or f"A first draft about {request.title}."
        await ctx.send_message(Draft(request.title, body))


class Reviewer(Executor):
    """Asks a human to approve each draft."""

    @handler
    async def review(self, draft: Draft, ctx: WorkflowContext[Draft]) -> None:
        await ctx.set_shared_state(f"draft-{draft.revision}", draft.body)
        await ctx.request_info(ReviewRequest(draft.title, draft.body, draft.revision),
                               ReviewDecision)

    @response_handler
    async def decided(self, request: ReviewRequest, decision: ReviewDecision,
                      ctx: WorkflowContext[Draft, str]) -> None:
        draft = Draft(request.title, request.body, request.revision)
        if decision.approved:
            await ctx.yield_output(f"published '{draft.title}' (revision {draft.revision})")
        else:
            await ctx.send_message(Draft(draft.title, f"{draft.body}\n[revised: {decision.comment}]",
                                         draft.revision + 1))


class Reviser(Executor):
    @handler
    async def revise(self, draft: Draft, ctx: WorkflowContext[Draft]) -> None:
        await ctx.send_message(draft)


@register_workflow("document-review", title="Document review",
                   description="A draft needs a human's approval; rejected drafts are revised.")
def build_document_review() -> Workflow:
    writer, reviewer, reviser = Writer("writer"), Reviewer("reviewer"), Reviser("reviser")
    return (WorkflowBuilder(name="document-review", start_executor=writer)
            .add_edge(writer, reviewer)
            .add_edge(reviewer, reviser)
            .add_edge(reviser, reviewer)
            .build())


# --------------------------------------------------------------------------- long loop
# A round takes two supersteps (tick, count) and the workflow allows 10,000 of them
# (max_iterations below): 5,000 rounds is the longest run that can finish.
MAX_ROUNDS = 5_000
LOOP_MAX_ITERATIONS = 2 * MAX_ROUNDS
Round = Annotated[int, Field(ge=1, le=MAX_ROUNDS)]


@dataclass
class LoopInput:
    rounds: Round = 20
    fail_at: Round | None = None  # the tick at which the counter fails, once
    step_ms: Annotated[int, Field(ge=0, le=60_000)] = 0  # time each tick takes (at most a minute)


@dataclass
class Tick:
    n: int
    rounds: int
    fail_at: int | None
    step_ms: int


class Ticker(Executor):
    """Sends ticks; remembers how many it sent (state-key hooks: on_checkpointing and
    on_checkpoint_restored with ctx.queue_state_update and ctx.read_state)."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.sent = 0

    @handler
    async def start(self, request: LoopInput, ctx: WorkflowContext[Tick]) -> None:
        await self._tick(Tick(1, request.rounds, request.fail_at, request.step_ms), ctx)

    @handler
    async def next(self, tick: Tick, ctx: WorkflowContext[Tick]) -> None:
        await self._tick(Tick(tick.n + 1, tick.rounds, tick.fail_at, tick.step_ms), ctx)

    async def _tick(self, tick: Tick, ctx: WorkflowContext[Tick]) -> None:
        self.sent += 1
        await ctx.send_message(tick)

    async def on_checkpointing(self, ctx) -> None:
        await ctx.queue_state_update("sent", self.sent)

    async def on_checkpoint_restored(self, ctx) -> None:
        self.sent = await ctx.read_state("sent", 0)


class Accumulator(Executor):
    """Adds up the ticks; fails once at ``fail_at`` unless it was restored from a checkpoint
    (a resumed run has been restored, so the failure behaves like a transient fault)."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.total = 0
        self.seen: list[int] = []
        self.restored = False

    @handler
    async def count(self, tick: Tick, ctx: WorkflowContext[Tick, int]) -> None:
        if tick.step_ms:
            await asyncio.sleep(tick.step_ms / 1000)
        if tick.n == tick.fail_at and not self.restored:
            raise RuntimeError(f"told to fail at tick {tick.n}")
        self.total += tick.n
        self.seen.append(tick.n)
        if tick.n >= tick.rounds:
            await ctx.yield_output(self.total)
        else:
            await ctx.send_message(tick)

    async def on_checkpointing(self, ctx) -> None:
        await ctx.queue_state_update("total", self.total)
        await ctx.queue_state_update("seen", list(self.seen))

    async def on_checkpoint_restored(self, ctx) -> None:
        self.total = await ctx.read_state("total", 0)
        self.seen = list(await ctx.read_state("seen", []))
        self.restored = True


@register_workflow("long-loop", title="Long loop",
                   description="Counts to N with state in checkpoints; can fail once at a tick.")
def build_long_loop() -> Workflow:
    ticker, counter = Ticker("ticker"), Accumulator("counter")
    return (WorkflowBuilder(name="long-loop", start_executor=ticker,
                            max_iterations=LOOP_MAX_ITERATIONS)
            .add_edge(ticker, counter).add_edge(counter, ticker).build())


# --------------------------------------------------------------------------- map-reduce
MAPPERS = 4


@dataclass
class Chunks:
    chunks: list[str]


@dataclass
class WordCounts:
    counts: dict[str, int] = field(default_factory=dict)


class Splitter(Executor):
    @handler
    async def split(self, text: str, ctx: WorkflowContext[Chunks]) -> None:
        lines = [line for line in text.splitlines() if line.strip()] or [text]
        await ctx.send_message(Chunks(lines))


class Mapper(Executor):
    def __init__(self, id: str, index: int) -> None:
        super().__init__(id)
        self.index = index

    @handler
    async def map(self, chunks: Chunks, ctx: WorkflowContext[WordCounts]) -> None:
        mine = chunks.chunks[self.index::MAPPERS]
        counts = Counter(word.lower().strip(".,;:!?") for chunk in mine for word in chunk.split())
        await ctx.send_message(WordCounts(dict(counts)))


class Reducer(Executor):
    @handler
    async def reduce(self, parts: list[WordCounts], ctx: WorkflowContext[Never, dict]) -> None:
        total: Counter = Counter()
        for part in parts:
            total.update(part.counts)
        await ctx.yield_output(dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))))


@register_workflow("map-reduce", title="Word count (map-reduce)",
                   description="Splits a text, counts words in four mappers, merges the counts.")
def build_map_reduce() -> Workflow:
    splitter = Splitter("split")
    mappers = [Mapper(f"map-{i}", i) for i in range(MAPPERS)]
    reducer = Reducer("reduce")
    return (WorkflowBuilder(name="map-reduce", start_executor=splitter)
            .add_fan_out_edges(splitter, mappers)
            .add_fan_in_edges(mappers, reducer)
            .build())


# --------------------------------------------------------------------------- ticket router
class Priority(str, enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


@dataclass
class Ticket:
    subject: Title
    priority: Priority = Priority.NORMAL


SLA_HOURS = {Priority.HIGH: 1, Priority.NORMAL: 24, Priority.LOW: 72}


class Triage(Executor):
    @handler
    async def triage(self, ticket: Ticket, ctx: WorkflowContext[Ticket]) -> None:
        await ctx.set_shared_state("sla_hours", SLA_HOURS[ticket.priority])
        routed = await ctx.get_shared_state("routed", 0)
        await ctx.set_shared_state("routed", routed + 1)
        await ctx.send_message(ticket)


class Desk(Executor):
    @handler
    async def take(self, ticket: Ticket, ctx: WorkflowContext[Never, str]) -> None:
        sla = await ctx.get_shared_state("sla_hours")
        await ctx.yield_output(f"{self.id} takes '{ticket.subject}' (answer within {sla} h)")


def is_urgent(ticket: Ticket) -> bool:
    return ticket.priority == Priority.HIGH


def is_billing(ticket: Ticket) -> bool:
    return any(word in ticket.subject.lower() for word in ("invoice", "refund", "billing"))


@register_workflow("ticket-router", title="Ticket router",
                   description="Routes tickets to desks by priority and topic (switch-case).")
def build_ticket_router() -> Workflow:
    triage = Triage("triage")
    urgent, billing, general = Desk("urgent-desk"), Desk("billing-desk"), Desk("general-desk")
    return (WorkflowBuilder(name="ticket-router", start_executor=triage)
            .add_switch_case_edge_group(triage, [Case(is_urgent, urgent),
                                                 Case(is_billing, billing),
                                                 Default(general)])
            .build())


# --------------------------------------------------------------------------- document pipeline
@dataclass
class PipelineInput:
    title: Title
    body: Body = ""
    audience: Annotated[str, Field(min_length=1, max_length=200)] = "everyone"


class Intake(Executor):
    """Notes the audience and hands the draft to the review sub-workflow."""

    @handler
    async def take(self, request: PipelineInput, ctx: WorkflowContext[ReviewInput]) -> None:
        await ctx.set_shared_state("audience", request.audience)
        body = request.body or f"A first draft about {request.title}, for {request.audience}."
        await ctx.send_message(ReviewInput(request.title, body))


class Archive(Executor):
    """Files what the review published."""

    @handler
    async def file(self, published: str, ctx: WorkflowContext[Never, str]) -> None:
        audience = await ctx.get_shared_state("audience", "everyone")
        await ctx.yield_output(f"{published}, sent to {audience}")


@register_workflow("document-pipeline", title="Document pipeline",
                   description="Intake, then the document review as a sub-workflow (its "
                               "requests are this run's), then the archive.")
def build_document_pipeline() -> Workflow:
    intake, archive = Intake("intake"), Archive("archive")
    # A new document-review instance per pipeline instance: it holds the review's state.
    review = WorkflowExecutor(build_document_review(), id="review")
    return (WorkflowBuilder(name="document-pipeline", start_executor=intake)
            .add_edge(intake, review)
            .add_edge(review, archive)
            .build())
