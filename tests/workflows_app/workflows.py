"""Workflows only the tests register (see the ``test_workflows`` fixture in conftest.py).

- ``emitter``: one executor yields an output at every tick, so a run's outputs tell exactly
  which supersteps its lineage ran (what a restore must carry over).
- ``intruder``: like ``emitter``, but at tick ``steal_at`` its handler hands the run's lease
  to another worker in the database, as a worker that took over an expired lease would,
  and at tick ``cancel_at`` it asks for the run to be cancelled, as an operator would.

Each tick takes ``step_ms`` (so a worker's heartbeat runs during it); with ``observe``, a
tick yields what it sees of the worker's commits instead of its number: how many of the
run's checkpoints are committed, and whether the run's lease reaches into the future.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from django.utils import timezone

from workflows_app import services
from workflows_app.engine import Executor, Workflow, WorkflowBuilder, WorkflowContext, handler
from workflows_app.models import Run
from workflows_app.states import RunStatus

OTHER_WORKER = "another-worker:1:takeover"


@dataclass
class Ticks:
    rounds: int
    steal_at: int = 0
    cancel_at: int = 0
    step_ms: int = 0
    observe: bool = False


@dataclass
class Tick:
    n: int
    rounds: int
    steal_at: int
    cancel_at: int
    step_ms: int
    observe: bool


class Emitter(Executor):
    @handler
    async def first(self, ticks: Ticks, ctx: WorkflowContext[Tick, int | dict]) -> None:
        await self.tick(Tick(1, ticks.rounds, ticks.steal_at, ticks.cancel_at, ticks.step_ms,
                             ticks.observe), ctx)

    @handler
    async def next(self, tick: Tick, ctx: WorkflowContext[Tick, int | dict]) -> None:
        await self.tick(replace(tick, n=tick.n + 1), ctx)

    async def tick(self, tick: Tick, ctx: WorkflowContext[Tick, int | dict]) -> None:
        if tick.n == tick.steal_at:
            Run.objects.filter(status=RunStatus.RUNNING).update(lease_owner=OTHER_WORKER)
        if tick.n == tick.cancel_at:
            services.cancel_run(Run.objects.get(status=RunStatus.RUNNING).pk)
        await asyncio.sleep(tick.step_ms / 1000)
        if tick.observe:
            run = Run.objects.get(status=RunStatus.RUNNING)
            await ctx.yield_output({"tick": tick.n, "committed": run.checkpoints.count(),
                                    "lease_ahead": run.lease_expires_at > timezone.now()})
        else:
            await ctx.yield_output(tick.n)
        if tick.n < tick.rounds:
            await ctx.send_message(tick)


class Echo(Executor):
    @handler
    async def echo(self, tick: Tick, ctx: WorkflowContext[Tick]) -> None:
        await ctx.send_message(tick)


def build(name: str) -> Workflow:
    emitter, echo = Emitter("emitter"), Echo("echo")
    return (WorkflowBuilder(name=name, start_executor=emitter, max_iterations=10_000)
            .add_edge(emitter, echo).add_edge(echo, emitter).build())


FACTORIES = {"emitter": lambda: build("emitter"), "intruder": lambda: build("intruder")}
