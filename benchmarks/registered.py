"""The reference workloads registered as Stepstone workflows, for the Django benchmarks
(load with STEPSTONE_WORKFLOW_MODULES=benchmarks.registered)."""

from benchmarks.reference import approval_workflow, fanout_workflow, pingpong_workflow
from workflows_app.registry import register_workflow

register_workflow("pingpong", title="Reference: pingpong")(lambda: pingpong_workflow(None))
register_workflow("pingpong-2000", title="Reference: pingpong, 2,000 supersteps")(
    lambda: pingpong_workflow(None, steps=2000, name="pingpong-2000"))
register_workflow("fanout", title="Reference: fan-out/fan-in")(lambda: fanout_workflow(None))
register_workflow("approval", title="Reference: approval")(lambda: approval_workflow(None))
