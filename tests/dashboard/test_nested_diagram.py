"""The graph diagram of a workflow holding sub-workflows: each is a box labelled with its id
around its own graph (laid out as any graph is, nested as deep as it goes), inner executors
drawn under ids prefixed with the box's, the parent's edges attached to the box."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from dashboard.diagram import GAP_X, GROUP_HEAD, NODE_H, NODE_W, PAD, layout
from workflows_app import registry

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _quiet(quiet_channels):
    """No live messages: layouts and pages are checked here."""


def chain(*ids: str, **inner: dict) -> dict:
    """A described graph: ``ids`` in a line; keyword arguments make an id a sub-workflow."""
    return {"start_executor_id": ids[0],
            "executors": [{"id": i, **({"workflow": inner[i]} if i in inner else {})}
                          for i in ids],
            "edge_groups": [{"kind": "direct", "sources": [a], "targets": [b]}
                            for a, b in zip(ids, ids[1:])]}


def by_id(diagram: dict) -> dict:
    return {n["id"]: n for n in diagram["nodes"]}


def drawn(diagram: dict) -> ET.Element:
    svg = render_to_string("dashboard/_graph.html", {"diagram": diagram, "graph_id": "graph"})
    # The template writes SVG without its namespace (HTML adds it); parse it as plain XML.
    return ET.fromstring(svg)


def pipeline() -> dict:
    return layout(registry.get_definition("document-pipeline").build().describe())


# --------------------------------------------------------------------------- the layout
def test_the_review_step_is_a_box_around_the_document_review_graph():
    nodes = by_id(pipeline())
    review = nodes["review"]
    inner = review["group"]
    assert review["name"] == "review"
    assert [n["id"] for n in inner["nodes"]] == ["review/writer", "review/reviewer",
                                                 "review/reviser"]
    assert [n["name"] for n in inner["nodes"]] == ["writer", "reviewer", "reviser"]
    assert {(e["source"], e["target"]) for e in inner["edges"]} == {
        ("review/writer", "review/reviewer"), ("review/reviewer", "review/reviser"),
        ("review/reviser", "review/reviewer")}
    # The box holds the inner graph below its label, and is as big as that graph.
    assert (review["w"], review["h"]) == (inner["width"], GROUP_HEAD + inner["height"])
    for node in inner["nodes"]:
        assert 0 < node["x"] and node["x"] + NODE_W < review["w"]
        assert 0 < review["inner_y"] + node["y"]
        assert review["inner_y"] + node["y"] + NODE_H < review["h"]
    # Columns and the drawing grow around the box; the outer executors stay plain.
    assert nodes["intake"] == {"id": "intake", "x": PAD, "y": nodes["intake"]["y"]}
    assert review["x"] == PAD + NODE_W + GAP_X
    assert nodes["archive"]["x"] == review["x"] + review["w"] + GAP_X
    diagram = pipeline()
    assert diagram["width"] == nodes["archive"]["x"] + NODE_W + PAD
    assert diagram["height"] >= review["y"] + review["h"] + PAD


def test_the_parents_edges_attach_to_the_box_at_its_middle():
    diagram = pipeline()
    nodes = by_id(diagram)
    review = nodes["review"]
    middle = review["y"] + review["h"] / 2
    into, out = (next(e for e in diagram["edges"] if e[end] == "review")
                 for end in ("target", "source"))
    assert into["path"].endswith(f"{review['x']},{middle}")
    assert out["path"].startswith(f"M{review['x'] + review['w']},{middle} ")
    # Plain executors beside a taller box sit on its middle line: the edges run straight.
    for plain in ("intake", "archive"):
        assert nodes[plain]["y"] + NODE_H / 2 == middle


def test_inner_ids_never_clash_with_outer_ones_however_deep():
    leaf = chain("a", "b")
    middle = chain("a", "inner", inner=leaf)
    diagram = layout(chain("a", "inner", "b", inner=middle))
    outer = by_id(diagram)
    level1 = by_id(outer["inner"]["group"])
    level2 = by_id(level1["inner/inner"]["group"])
    assert set(outer) == {"a", "inner", "b"}
    assert set(level1) == {"inner/a", "inner/inner"}
    assert set(level2) == {"inner/inner/a", "inner/inner/b"}
    assert level2["inner/inner/b"]["name"] == "b"
    # Each box holds the next one.
    assert level1["inner/inner"]["w"] < outer["inner"]["w"]
    assert level1["inner/inner"]["h"] < outer["inner"]["h"]
    assert {e["target"] for e in outer["inner"]["group"]["edges"]} == {"inner/inner"}


def test_a_plain_executor_sharing_a_column_with_a_box_is_centred_under_it():
    graph = chain("start", "sub", "end", sub=chain("x", "y", "z"))
    graph["executors"].append({"id": "side"})
    graph["edge_groups"].append({"kind": "direct", "sources": ["start"], "targets": ["side"]})
    nodes = by_id(layout(graph))
    sub, side = nodes["sub"], nodes["side"]
    assert side["x"] == sub["x"] + (sub["w"] - NODE_W) // 2
    assert side["y"] >= sub["y"] + sub["h"]  # stacked below it, never on it


def test_a_graph_without_sub_workflows_is_laid_out_as_before():
    diagram = layout(registry.get_definition("document-review").build().describe())
    for node in diagram["nodes"]:
        assert set(node) == {"id", "x", "y"}
        assert isinstance(node["x"], int)  # drawn as "16", never "16.0"


# --------------------------------------------------------------------------- the SVG
def test_the_svg_nests_the_inner_nodes_inside_the_box():
    svg = drawn(pipeline())
    box, = [g for g in svg.iter("g") if "subworkflow" in g.get("class", "").split()]
    assert box.get("data-executor") == "review" and "node" in box.get("class").split()
    label = box.find("text")
    assert label.get("class") == "group-label" and label.text == "review"
    inner = [g for g in box.iter("g") if g.get("class") == "node"]
    assert [(g.get("data-executor"), g.find("text").text) for g in inner] == [
        ("review/writer", "writer"), ("review/reviewer", "reviewer"),
        ("review/reviser", "reviser")]
    # One drawing: one marker, every executor id once.
    every = [g.get("data-executor") for g in svg.iter("g") if g.get("data-executor")]
    assert len(every) == len(set(every)) == 6
    assert len(svg.findall(".//marker")) == 1
    titles = [t.text for t in svg.iter("title")]
    assert "intake → review (direct)" in titles
    assert "review/writer → review/reviewer (direct)" in titles


def test_the_workflows_page_draws_the_pipeline_nested(admin_client):
    html = admin_client.get(reverse("dashboard:workflows")).content.decode()
    assert 'class="node subworkflow" data-executor="review"' in html
    assert 'data-executor="review/reviewer"' in html
