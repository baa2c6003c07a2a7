"""The navigation's open-request count (a context processor) and the graph diagram's edge
labels (switch-case cases, conditional edges), down to what the pages render."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from dashboard.context_processors import open_requests
from dashboard.diagram import GAP_X, LABEL_CHAR_W, NODE_W, layout
from workflows_app import registry, services
from workflows_app.engine import Case, Default, Executor, WorkflowBuilder, WorkflowContext, handler
from workflows_app.models import PendingRequest, RegisteredWorkflow, Run
from workflows_app.states import RequestStatus

# The examples' graph signature hashes as checkpoints written before switch-case cases were
# described recorded them: describing more must not make those checkpoints unrestorable.
# (Change a pin only with the example's graph itself.)
SIGNATURES_BEFORE_CASES = {
    "ticket-router": "613920eaf8e6a5142d9475bf8297225bd010a2c66f9a88f2afa110fa7b90171e",
    "map-reduce": "bb185c238c75d8911aaa7cfacb68f20cd2c47f51de099695dcb4392249a2aade",
}


@pytest.fixture(autouse=True)
def _quiet(quiet_channels):
    """No live messages: pages and layouts are checked here."""


def labels(diagram) -> dict[tuple[str, str], str]:
    return {(e["source"], e["target"]): e["label"] for e in diagram["edges"]}


# --------------------------------------------------------------------------- the engine
def test_switch_case_groups_describe_their_cases_in_matching_order():
    group, = registry.get_definition("ticket-router").build().describe()["edge_groups"]
    assert group["kind"] == "switch_case"
    assert group["cases"] == [
        {"condition": "workflows_app.examples.is_urgent", "target": "urgent-desk"},
        {"condition": "workflows_app.examples.is_billing", "target": "billing-desk"},
        {"condition": None, "target": "general-desk"},
    ]


@pytest.mark.parametrize("name", sorted(SIGNATURES_BEFORE_CASES))
def test_describing_cases_leaves_the_graph_signature_as_checkpoints_recorded_it(name):
    workflow = registry.get_definition(name).build()
    assert workflow.graph_signature_hash == SIGNATURES_BEFORE_CASES[name]
    assert workflow.describe()["graph_signature_hash"] == SIGNATURES_BEFORE_CASES[name]


# --------------------------------------------------------------------------- the diagram
def test_switch_case_edges_are_labelled_with_their_case_and_fan_edges_are_not():
    router = layout(registry.get_definition("ticket-router").build().describe())
    assert labels(router) == {("triage", "urgent-desk"): "is_urgent",
                              ("triage", "billing-desk"): "is_billing",
                              ("triage", "general-desk"): "default"}
    fan = layout(registry.get_definition("map-reduce").build().describe())
    assert {e["kind"] for e in fan["edges"]} >= {"fan_out", "fan_in"}
    assert set(labels(fan).values()) == {""}


def test_a_graph_described_before_cases_were_recorded_gets_the_same_labels():
    graph = registry.get_definition("ticket-router").build().describe()
    for group in graph["edge_groups"]:
        del group["cases"]  # as a row synced by an earlier version stores it
    assert labels(layout(graph)) == {("triage", "urgent-desk"): "is_urgent",
                                     ("triage", "billing-desk"): "is_billing",
                                     ("triage", "general-desk"): "default"}


class Router(Executor):
    @handler
    async def route(self, message: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(message)


class Sink(Executor):
    @handler
    async def take(self, message: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(message)


def is_small(value: int) -> bool:
    return value < 10


def is_negative(value: int) -> bool:
    return value < 0


def is_even(value: int) -> bool:
    return value % 2 == 0


def test_cases_sharing_a_target_share_its_edge_and_a_conditional_loop_is_labelled():
    router, small, other = Router("router"), Sink("small"), Sink("other")
    workflow = (WorkflowBuilder(name="labels", start_executor=router)
                .add_switch_case_edge_group(router, [Case(is_small, small),
                                                     Case(is_negative, small),
                                                     Default(other)])
                .add_edge(small, router, condition=is_even)
                .build())
    diagram = layout(workflow.describe())
    assert labels(diagram) == {("router", "small"): "is_small / is_negative",
                               ("router", "other"): "default",
                               ("small", "router"): "is_even"}
    loop = next(e for e in diagram["edges"] if e["source"] == "small")
    joined = [n for n in diagram["nodes"] if n["id"] in ("small", "router")]
    # The loop's label sits on its bend: below the nodes it joins, between their columns,
    # inside the drawing.
    assert max(n["y"] for n in joined) + diagram["node_h"] < loop["label_y"] < diagram["height"]
    assert min(n["x"] for n in joined) + NODE_W / 2 < loop["label_x"] \
        < max(n["x"] for n in joined) + NODE_W / 2


def test_a_labelled_edge_runs_straight_into_its_target_under_its_label():
    diagram = layout(registry.get_definition("ticket-router").build().describe())
    nodes = {n["id"]: n for n in diagram["nodes"]}
    for edge in diagram["edges"]:
        target = nodes[edge["target"]]
        middle = target["y"] + diagram["node_h"] / 2
        assert edge["path"].endswith(f" L{target['x']},{middle}")
        assert edge["label_y"] == middle  # on the target's row
        # The pill lies between the source's column and the target, clear of both.
        assert nodes["triage"]["x"] + NODE_W < edge["label_left"]
        assert edge["label_left"] + edge["label_w"] < target["x"]


def test_columns_make_room_for_the_longest_label():
    long_name = "a_condition_with_a_rather_long_name"
    graph = {"start_executor_id": "a", "executors": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
             "edge_groups": [{"kind": "switch_case", "sources": ["a"], "targets": ["b", "c"],
                              "cases": [{"condition": f"mod.{long_name}", "target": "b"},
                                        {"condition": None, "target": "c"}]}]}
    diagram = layout(graph)
    nodes = {n["id"]: n for n in diagram["nodes"]}
    gap = nodes["b"]["x"] - (nodes["a"]["x"] + NODE_W)
    assert gap >= len(long_name) * LABEL_CHAR_W > GAP_X
    # A graph without labels keeps the usual gap.
    plain = layout({**graph, "edge_groups": [{"kind": "fan_out", "sources": ["a"],
                                              "targets": ["b", "c"]}]})
    plain_nodes = {n["id"]: n for n in plain["nodes"]}
    assert plain_nodes["b"]["x"] - (plain_nodes["a"]["x"] + NODE_W) == GAP_X


def test_the_graph_template_draws_each_label_after_the_nodes():
    diagram = layout(registry.get_definition("ticket-router").build().describe())
    svg = render_to_string("dashboard/_graph.html", {"diagram": diagram, "graph_id": "graph"})
    drawn = re.findall(r'<g class="edge-label[^"]*" data-source="triage" '
                       r'data-target="([^"]+)"><rect [^>]*/><text [^>]*>([^<]+)</text></g>', svg)
    assert drawn == [("urgent-desk", "is_urgent"), ("billing-desk", "is_billing"),
                     ("general-desk", "default")]
    assert svg.index('class="edge-label') > svg.rindex('class="node"')
    assert "triage → urgent-desk (switch_case: is_urgent)" in svg


# --------------------------------------------------------------------------- the count
@pytest.fixture
def requests_of_a_run():
    """Three requests of one run: two open, one answered."""
    workflow = RegisteredWorkflow.objects.create(name="demo", title="Demo",
                                                 graph_signature_hash="x")
    run = Run.objects.create(workflow=workflow, status="waiting")
    for number, status in enumerate([RequestStatus.OPEN, RequestStatus.OPEN,
                                     RequestStatus.ANSWERED]):
        PendingRequest.objects.create(run=run, request_id=f"r{number}", source_executor_id="x",
                                      response_type={}, status=status)
    return run


def processed(user):
    request = RequestFactory().get("/")
    request.user = user
    return open_requests(request)


def test_the_count_is_one_query_made_only_when_a_template_shows_it(
        users, requests_of_a_run, django_assert_num_queries):
    users.viewer.has_perm("workflows_app.view_run")  # the permission cache, as a view fills it
    with django_assert_num_queries(0):
        context = processed(users.viewer)
    with django_assert_num_queries(1):
        assert str(context["open_request_count"]) == "2"
    with django_assert_num_queries(0):  # counted once per page
        assert context["open_request_count"] == 2


def test_whoever_may_not_view_runs_gets_no_count(users, requests_of_a_run):
    from django.contrib.auth.models import AnonymousUser

    assert processed(users.nobody) == {} and processed(AnonymousUser()) == {}


def test_every_page_shows_the_count_and_loads_the_live_script_once_per_role(
        client, users, requests_of_a_run):
    client.force_login(users.viewer)
    for name in ("dashboard:runs", "dashboard:workflows", "dashboard:requests"):
        html = client.get(reverse(name)).content.decode()
        assert re.search(r'id="nav-requests"><span class="label">Requests</span> '
                         r'<span id="open-requests" class="count" '
                         r'data-count="2"[^>]*>2</span>', html), name
        assert html.count("dashboard/live.js") == 1, name
        assert 'id="connection-banner"' in html and 'data-watch="nav"' in html
        assert html.count("dashboard/watch.js") == 1, name  # starts the [data-watch] parts
    PendingRequest.objects.filter(request_id="r0").update(status=RequestStatus.CANCELLED)
    assert 'data-count="1"' in client.get(reverse("dashboard:runs")).content.decode()
    client.force_login(users.nobody)  # refused pages still have the navigation, not the count
    refused = client.get(reverse("dashboard:runs"))
    assert refused.status_code == 403
    assert 'id="open-requests"' not in refused.content.decode()
    assert "live.js" not in refused.content.decode()


def test_the_inbox_list_alone_has_the_cards_the_inbox_shows(client, users, requests_of_a_run):
    client.force_login(users.viewer)
    inbox = client.get(reverse("dashboard:requests")).content.decode()
    alone = client.get(reverse("dashboard:requests-list"))
    assert alone.status_code == 200
    cards = re.findall(r'<form class="request-form card" data-request="([^"]+)"',
                       alone.content.decode())
    assert len(cards) == 2
    assert cards == re.findall(r'<form class="request-form card" data-request="([^"]+)"', inbox)
    # Its forms come back to the inbox once answered, not to the list's own address.
    assert alone.content.decode().count(f'name="next" value="{reverse("dashboard:requests")}"') == 2
    assert 'id="requests" data-watch="inbox"' in inbox
    PendingRequest.objects.update(status=RequestStatus.CANCELLED)
    assert "Nothing is waiting for an answer." in client.get(
        reverse("dashboard:requests-list")).content.decode()
    client.force_login(users.nobody)
    assert client.get(reverse("dashboard:requests-list")).status_code == 403


def test_a_waiting_review_counts_as_open(client, users, execute):
    run = execute(services.start_run("document-review", {"title": "Plan"}))
    assert run.status == "waiting"
    client.force_login(users.viewer)
    assert 'data-count="1"' in client.get(reverse("dashboard:workflows")).content.decode()
