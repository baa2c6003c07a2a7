"""Lay out a workflow graph (as ``Workflow.describe()`` gives it) for an SVG diagram:
executors in columns by their distance from the start executor, edges as curves. Edges
chosen by a condition carry a label: a switch-case edge its case (the condition's name, or
"default"), a conditional direct edge its condition.

An executor that is a sub-workflow (its description has a ``"workflow"`` key) is drawn as a
group: a box labelled with its id, holding its inner graph laid out the same way (and so on
for deeper nesting); the parent's edges attach to the box."""

from __future__ import annotations

from typing import Any

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 40, 70, 22, 16
# A label is a pill (text at 11px) on the straight run of its edge into the target, so it
# lines up with the executor it leads to. The glyph width is a generous average for the
# usual sans-serif fonts (the server cannot measure text); the pill is padded around it.
LABEL_CHAR_W, LABEL_PAD, LABEL_H = 6.6, 8, 18
ARROW_ROOM, CURVE_MIN = 12, 44  # room left for the arrowhead; the least curve before a run
# A group's header holds its label above the inner graph, whose own PAD is the box's margin.
GROUP_HEAD = 24
# Inner executor ids are prefixed with their group's id and this separator (the engine's
# request-id separator), so "review/writer" can never clash with an outer executor id.
GROUP_SEPARATOR = "/"


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


def layout(graph: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Positions for every executor and a path for every edge of ``graph``.

    Returns ``width``, ``height``, ``node_w``, ``node_h``, ``nodes`` (``id``, ``x``, ``y``
    each, in the graph's executor order, and ``name``, the unprefixed id, under a prefix) and ``edges`` (``path``, ``kind``, ``source``,
    ``target`` and the label's geometry). A sub-workflow's node also has ``name`` (its own
    id), ``w`` and ``h`` (its box) and ``group``: the inner graph's layout, drawn at
    (0, ``inner_y``) inside the box, with ids prefixed ``<prefix><id>/``. ``prefix``
    is prepended to every id (``nodes`` and edge ends) and is what nesting passes down; a
    graph without sub-workflows is laid out exactly as a flat graph always was."""
    executors = [e["id"] for e in graph.get("executors", [])]
    groups = {e["id"]: layout(e["workflow"], f"{prefix}{e['id']}{GROUP_SEPARATOR}")
              for e in graph.get("executors", []) if isinstance(e.get("workflow"), dict)}
    size = {e: (groups[e]["width"], GROUP_HEAD + groups[e]["height"]) if e in groups
            else (NODE_W, NODE_H) for e in executors}
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
    # A column is as wide as its widest member (a group may be wider than an executor) and
    # as tall as its members stacked; narrower members are centred in it. With no groups
    # every size is NODE_W x NODE_H and this is the flat grid.
    order = sorted(columns)
    column_w = {c: max(size[e][0] for e in columns[c]) for c in order}
    column_h = {c: sum(size[e][1] for e in columns[c]) + (len(columns[c]) - 1) * GAP_Y
                for c in order}
    height = PAD * 2 + max(column_h.values(), default=NODE_H)
    column_x, x = {}, PAD
    for column in order:
        column_x[column] = x
        x += column_w[column] + gap_x
    sizes = {}  # by drawn id
    nodes = {}
    for column, members in columns.items():
        top = (height - column_h[column]) / 2
        for executor in members:
            w, h = size[executor]
            node = {"id": prefix + executor,
                    "x": column_x[column] + (column_w[column] - w) // 2, "y": top}
            if prefix:  # drawn with its own id; the prefixed one is for the page's scripts
                node["name"] = executor
            if executor in groups:
                node.update(name=executor, w=w, h=h, group=groups[executor],
                            inner_y=GROUP_HEAD)
            nodes[executor] = node
            sizes[executor] = (w, h)
            top += h + GAP_Y
    width = PAD * 2 + sum(column_w.values()) + max(len(columns) - 1, 0) * gap_x
    lines = []
    for source, target, kind, label in edges:
        a, b = nodes[source], nodes[target]
        (aw, ah), (bw, bh) = sizes[source], sizes[target]
        x1, y1 = a["x"] + aw, a["y"] + ah / 2
        x2, y2 = b["x"], b["y"] + bh / 2
        label_w = label_width(label) if label else 0
        if b["x"] <= a["x"]:  # a loop back: leave from the bottom, arrive from below
            x1, y1 = a["x"] + aw / 2, a["y"] + ah
            x2, y2 = b["x"] + bw / 2, b["y"] + bh
            bend = max(a["y"] + ah, b["y"] + bh) + GAP_Y
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
        lines.append({"path": path, "kind": kind, "source": prefix + source,
                      "target": prefix + target,
                      "label": label, "label_x": label_x, "label_y": label_y,
                      "label_w": label_w, "label_h": LABEL_H,
                      "label_left": label_x - label_w / 2, "label_top": label_y - LABEL_H / 2})
    return {"width": width, "height": height, "node_w": NODE_W, "node_h": NODE_H,
            "nodes": [nodes[e] for e in executors], "edges": lines}


def label_width(label: str) -> float:
    """The width of a label's pill, estimated from its length."""
    return round(len(label) * LABEL_CHAR_W + 2 * LABEL_PAD)
