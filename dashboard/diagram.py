"""Lay out a workflow graph (as ``Workflow.describe()`` gives it) for an SVG diagram:
executors in columns by their distance from the start executor, edges as curves. Edges
chosen by a condition carry a label: a switch-case edge its case (the condition's name, or
"default"), a conditional direct edge its condition."""

from __future__ import annotations

from typing import Any

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 40, 70, 22, 16
# A label is a pill (text at 11px) on the straight run of its edge into the target, so it
# lines up with the executor it leads to. The glyph width is a generous average for the
# usual sans-serif fonts (the server cannot measure text); the pill is padded around it.
LABEL_CHAR_W, LABEL_PAD, LABEL_H = 6.6, 8, 18
ARROW_ROOM, CURVE_MIN = 12, 44  # room left for the arrowhead; the least curve before a run


def short_name(condition: str) -> str:
    """A condition as a person reads it: ``pkg.module.is_urgent`` -> ``is_urgent``."""
    return condition.rsplit(".", 1)[-1]


def case_labels(group: dict[str, Any]) -> dict[str, str]:
    """The label of each target of a switch-case group: its case's condition name, or
    "default"; the names of every case leading to a target when several do. Graphs
    described before cases were recorded are read from their ``conditions`` lines
    (``name->target``)."""
    cases = group.get("cases")
    if cases is None:
        cases = []
        for line in group.get("conditions") or []:
            target = next((t for t in group["targets"] if line.endswith(f"->{t}")), None)
            if target is not None:
                name = line[:-len(target) - 2]
                cases.append({"condition": None if name == "default" else name,
                              "target": target})
    labels: dict[str, list[str]] = {}
    for case in cases:
        name = "default" if case["condition"] is None else short_name(case["condition"])
        labels.setdefault(case["target"], []).append(name)
    return {target: " / ".join(names) for target, names in labels.items()}


def edge_labels(group: dict[str, Any]) -> dict[str, str]:
    """Labels by target for one edge group ({} for kinds that have none)."""
    if group["kind"] == "switch_case":
        return case_labels(group)
    conditions = [c for c in group.get("conditions") or [] if c]
    if group["kind"] == "direct" and conditions:
        return {target: short_name(conditions[0]) for target in group["targets"]}
    return {}


def layout(graph: dict[str, Any]) -> dict[str, Any]:
    executors = [e["id"] for e in graph.get("executors", [])]
    edges = []  # (source, target, kind, label)
    for group in graph.get("edge_groups", []):
        labels = edge_labels(group)
        edges.extend((s, t, group["kind"], labels.get(t, ""))
                     for s in group["sources"] for t in group["targets"])
    depth = {graph.get("start_executor_id"): 0}
    frontier = [graph.get("start_executor_id")]
    while frontier:  # breadth-first: an executor's column is its first distance from start
        current = frontier.pop(0)
        for source, target, _, _ in edges:
            if source == current and target not in depth:
                depth[target] = depth[current] + 1
                frontier.append(target)
    columns: dict[int, list[str]] = {}
    for executor in executors:
        columns.setdefault(depth.get(executor, 0), []).append(executor)
    # Make the gap between columns room enough for a curve and the longest label's run.
    widest = max((label_width(label) for *_, label in edges if label), default=0)
    gap_x = max(GAP_X, round(CURVE_MIN + widest + ARROW_ROOM)) if widest else GAP_X
    tallest = max((len(c) for c in columns.values()), default=1)
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    nodes = {}
    for column, members in columns.items():
        column_height = len(members) * NODE_H + (len(members) - 1) * GAP_Y
        top = (height - column_height) / 2
        for row, executor in enumerate(members):
            nodes[executor] = {"id": executor, "x": PAD + column * (NODE_W + gap_x),
                               "y": top + row * (NODE_H + GAP_Y)}
    width = PAD * 2 + len(columns) * NODE_W + max(len(columns) - 1, 0) * gap_x
    lines = []
    for source, target, kind, label in edges:
        a, b = nodes[source], nodes[target]
        x1, y1 = a["x"] + NODE_W, a["y"] + NODE_H / 2
        x2, y2 = b["x"], b["y"] + NODE_H / 2
        label_w = label_width(label) if label else 0
        if b["x"] <= a["x"]:  # a loop back: leave from the bottom, arrive from below
            x1, y1 = a["x"] + NODE_W / 2, a["y"] + NODE_H
            x2, y2 = b["x"] + NODE_W / 2, b["y"] + NODE_H
            bend = max(a["y"], b["y"]) + NODE_H + GAP_Y
            path = f"M{x1},{y1} C{x1},{bend} {x2},{bend} {x2},{y2}"
            height = max(height, bend + PAD)
            # The curve's midpoint (t = 1/2 of the cubic) is the bottom of the bend.
            label_x, label_y = (x1 + x2) / 2, (y1 + y2 + 6 * bend) / 8
        elif label:
            # Curve to the target's height, then straight in, the label on the straight run.
            run_start = x2 - ARROW_ROOM - label_w
            mid = (x1 + run_start) / 2
            path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {run_start},{y2} L{x2},{y2}"
            label_x, label_y = run_start + label_w / 2, y2
        else:
            mid = (x1 + x2) / 2
            path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
            label_x, label_y = mid, (y1 + y2) / 2
        lines.append({"path": path, "kind": kind, "source": source, "target": target,
                      "label": label, "label_x": label_x, "label_y": label_y,
                      "label_w": label_w, "label_h": LABEL_H,
                      "label_left": label_x - label_w / 2, "label_top": label_y - LABEL_H / 2})
    return {"width": width, "height": height, "node_w": NODE_W, "node_h": NODE_H,
            "nodes": [nodes[e] for e in executors], "edges": lines}


def label_width(label: str) -> float:
    """The width of a label's pill, estimated from its length."""
    return round(len(label) * LABEL_CHAR_W + 2 * LABEL_PAD)
