"""Lay out a workflow graph (as ``Workflow.describe()`` gives it) for an SVG diagram:
executors in columns by their distance from the start executor, edges as curves."""

from __future__ import annotations

from typing import Any

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 40, 70, 22, 16


def layout(graph: dict[str, Any]) -> dict[str, Any]:
    executors = [e["id"] for e in graph.get("executors", [])]
    edges = [(s, t, group["kind"]) for group in graph.get("edge_groups", [])
             for s in group["sources"] for t in group["targets"]]
    depth = {graph.get("start_executor_id"): 0}
    frontier = [graph.get("start_executor_id")]
    while frontier:  # breadth-first: an executor's column is its first distance from start
        current = frontier.pop(0)
        for source, target, _ in edges:
            if source == current and target not in depth:
                depth[target] = depth[current] + 1
                frontier.append(target)
    columns: dict[int, list[str]] = {}
    for executor in executors:
        columns.setdefault(depth.get(executor, 0), []).append(executor)
    tallest = max((len(c) for c in columns.values()), default=1)
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    nodes = {}
    for column, members in columns.items():
        column_height = len(members) * NODE_H + (len(members) - 1) * GAP_Y
        top = (height - column_height) / 2
        for row, executor in enumerate(members):
            nodes[executor] = {"id": executor, "x": PAD + column * (NODE_W + GAP_X),
                               "y": top + row * (NODE_H + GAP_Y)}
    width = PAD * 2 + len(columns) * NODE_W + max(len(columns) - 1, 0) * GAP_X
    lines = []
    for source, target, kind in edges:
        a, b = nodes[source], nodes[target]
        x1, y1 = a["x"] + NODE_W, a["y"] + NODE_H / 2
        x2, y2 = b["x"], b["y"] + NODE_H / 2
        if b["x"] <= a["x"]:  # a loop back: leave from the bottom, arrive from below
            x1, y1 = a["x"] + NODE_W / 2, a["y"] + NODE_H
            x2, y2 = b["x"] + NODE_W / 2, b["y"] + NODE_H
            bend = max(a["y"], b["y"]) + NODE_H + GAP_Y
            path = f"M{x1},{y1} C{x1},{bend} {x2},{bend} {x2},{y2}"
            height = max(height, bend + PAD)
        else:
            mid = (x1 + x2) / 2
            path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
        lines.append({"path": path, "kind": kind, "source": source, "target": target})
    return {"width": width, "height": height, "node_w": NODE_W, "node_h": NODE_H,
            "nodes": [nodes[e] for e in executors], "edges": lines}
