#!/usr/bin/env python3
"""Stepstone next to its peers, in one invocation on one machine.

Runs ``benchmarks/reference.py`` (Stepstone's engine, with this python),
``benchmarks/django_bench.py`` (the Django store on SQLite, through the worker's code path;
``--worker`` adds real qcluster workers) and then ``benchmarks/peers.sh run`` (MAF Python and
LangGraph in their own virtualenvs, created on first use) and ``benchmarks/maf_subpingpong.py``
(the two-level pingpong through MAF's ``WorkflowExecutor``, with MAF's venv; LangGraph has no
subpingpong row), parses every JSON line they print, and shows per (workload, storage):

  * per-superstep time and resume time of Stepstone, MAF and LangGraph, and Stepstone/MAF;
  * the targets of the performance issue, each PASS or FAIL.

LangGraph's storages map as none -> none, memory -> inmemory, sqlite -> file (its default
``async`` durability; the ``sync`` rows are listed under the table). MAF's file storage does
not fsync, so the ``file-nofsync`` row repeats MAF ``file`` for a like-for-like comparison.

All parsed lines (plus the target verdicts) go to ``--out`` (default
``benchmarks/results/latest.json``). The exit code is 0 even when a target fails (this is
a report); it is 1 only when a benchmark itself failed or printed nothing usable.

    python benchmarks/compare.py [--worker] [--no-django]
    python benchmarks/compare.py --reps 5 --out benchmarks/results/run1.json
    python benchmarks/compare.py --from benchmarks/results/run1.json   # re-print, no run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference.py"
DJANGO_BENCH = HERE / "django_bench.py"
PEERS = HERE / "peers.sh"
MAF_SUBPINGPONG = HERE / "maf_subpingpong.py"
DEFAULT_OUT = HERE / "results" / "latest.json"

WORKLOADS = ("pingpong", "fanout", "approval", "subpingpong")
STORAGES = ("none", "inmemory", "file", "file-nofsync", "django-sqlite")
MAF_STORAGE = {"none": "none", "inmemory": "inmemory", "file": "file", "file-nofsync": "file",
               "django-sqlite": "file"}
LG_STORAGE = {"none": "none", "inmemory": "memory", "file": "sqlite", "file-nofsync": "sqlite",
              "django-sqlite": "sqlite"}

# (label, workload, storage, metric, limit as a fraction of the peer's figure[, peer,
# peer storage]); the peer is MAF with the same storage kind unless named.
TARGETS = [
    ("pingpong none: per superstep <= 1/3 of MAF", "pingpong", "none", "per_superstep_us", 1 / 3),
    ("pingpong inmemory: per superstep <= 1/2 of MAF", "pingpong", "inmemory",
     "per_superstep_us", 1 / 2),
    ("fanout inmemory: per superstep <= 1/3 of MAF", "fanout", "inmemory",
     "per_superstep_us", 1 / 3),
    ("approval inmemory: rehydrate-and-finish resume_s <= MAF", "approval", "inmemory",
     "resume_s", 1.0),
    ("approval file: rehydrate-and-finish resume_s <= MAF", "approval", "file", "resume_s", 1.0),
    # issue 3: the Django store on SQLite, events included
    ("pingpong django-sqlite: per superstep <= 1/2 of MAF file", "pingpong", "django-sqlite",
     "per_superstep_us", 1 / 2, "maf", "file"),
    ("pingpong django-sqlite: per superstep <= LangGraph sqlite", "pingpong", "django-sqlite",
     "per_superstep_us", 1.0, "langgraph", "sqlite"),
    # issue 7: checkpoints that hold what changed
    ("pingpong django-sqlite: per superstep <= MAF inmemory", "pingpong", "django-sqlite",
     "per_superstep_us", 1.0, "maf", "inmemory"),
    ("pingpong django-sqlite (200 steps): bytes stored <= 1/10 of MAF", "pingpong",
     "django-sqlite", "checkpoint_bytes_total", 1 / 10, "maf", "inmemory"),
]

# Stepstone against itself: pingpong-growth rows (django_bench.py) at 2,000 supersteps
# against 200. (label, metric, largest allowed ratio)
GROWTH_TARGETS = [
    ("pingpong django-sqlite: bytes stored at 2,000 steps <= 15x at 200",
     "checkpoint_bytes_total", 15.0),
    ("pingpong django-sqlite: restore newest at 2,000 steps <= 2x at 200",
     "restore_newest_s", 2.0),
]


# --------------------------------------------------------------------------- running
def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` that is a JSON object (other output is ignored)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            rows.append(value)
    return rows


def run(command: list[str]) -> tuple[int, list[dict[str, Any]]]:
    """Run ``command`` (stderr passes through to ours) and parse its stdout."""
    print(f"compare.py: running {' '.join(command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        print(f"compare.py: {command[0]} exited with {done.returncode}", file=sys.stderr)
    return done.returncode, json_lines(done.stdout)


def split_peers(rows: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """peers.sh prints MAF's lines then LangGraph's; LangGraph's carry ``durability`` (or
    are its meta/check lines)."""
    maf, lg = [], []
    for row in rows:
        is_lg = ("durability" in row or "check" in row
                 or isinstance(row.get("meta"), str) or "langgraph" in row)
        (lg if is_lg else maf).append(row)
    return maf, lg


# --------------------------------------------------------------------------- lookups
def find(rows: list[dict], workload: str, storage: str, durability: str | None = None) -> dict | None:
    for row in rows:
        if row.get("workload") == workload and row.get("storage") == storage and (
                durability is None or row.get("durability") in (durability, "n/a")):
            return row
    return None


def lg_row(rows: list[dict], workload: str, storage: str, durability: str = "async") -> dict | None:
    name = LG_STORAGE[storage]
    return find(rows, workload, name, None if name == "none" else durability)


def value(row: dict | None, key: str) -> float | None:
    if row is None:
        return None
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fmt(v: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if v is None else f"{v * scale:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


# --------------------------------------------------------------------------- report
def table(ours: list[dict], maf: list[dict], lg: list[dict]) -> list[str]:
    head = ["workload", "storage",
            "S us/step", "MAF us/step", "LG us/step", "S/MAF",
            "S resume ms", "MAF resume ms", "LG resume ms", "S/MAF",
            "S KB stored", "MAF KB", "LG KB"]
    body = []
    for workload in WORKLOADS:
        for storage in STORAGES:
            s = find(ours, workload, storage)
            if s is None or s.get("mode"):  # the qcluster row is reported in the notes
                continue
            m = find(maf, workload, MAF_STORAGE[storage])
            g = lg_row(lg, workload, storage)
            body.append([
                workload, storage,
                fmt(value(s, "per_superstep_us")), fmt(value(m, "per_superstep_us")),
                fmt(value(g, "per_superstep_us")),
                ratio(value(s, "per_superstep_us"), value(m, "per_superstep_us")),
                fmt(value(s, "resume_s"), 1e3, 3), fmt(value(m, "resume_s"), 1e3, 3),
                fmt(value(g, "resume_s"), 1e3, 3),
                ratio(value(s, "resume_s"), value(m, "resume_s")),
                fmt(value(s, "checkpoint_bytes_total") or None, 1e-3),
                fmt(value(m, "checkpoint_bytes_total") or None, 1e-3),
                fmt(value(g, "checkpoint_bytes_total") or None, 1e-3),
            ])
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
    line = lambda r: "  ".join(  # noqa: E731
        str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    out = [line(head), line(["-" * w for w in widths])]
    previous = None
    for r in body:
        if previous is not None and r[0] != previous:
            out.append("")
        out.append(line(r))
        previous = r[0]
    return out


def notes(ours: list[dict], maf: list[dict], lg: list[dict]) -> list[str]:
    out = [
        "S = Stepstone (reference.py; django-sqlite rows: django_bench.py, the worker's code path",
        "  with every event recorded as a row), MAF = agent-framework-core, LG = LangGraph.",
        "Peer storage beside ours: MAF none/inmemory/file (MAF's file storage does not fsync, so",
        "  the file-nofsync row repeats MAF file); LG none/memory/sqlite (durability=async).",
        "resume: S and MAF pingpong/fanout = NEW instance restores the last-but-one checkpoint and",
        "  runs to completion (S django-sqlite: from and to the Django store, on the loop's",
        "  thread as a worker does); approval = rehydrate with the response and finish. LG pingpong/",
        "  fanout resume is only a get_state() on a fresh graph (no execution): not comparable.",
        "LG counts 60 supersteps for fanout and 3 for approval (S and MAF: 61 and 4).",
        "subpingpong: a <-> b, b a sub-workflow whose executor c is a sub-workflow of d",
        "  (201 supersteps; S: reference.py, MAF: maf_subpingpong.py, its WorkflowExecutor).",
    ]
    sync = []
    for workload in WORKLOADS:
        g = find(lg, workload, "sqlite", "sync")
        if g is not None:
            sync.append(f"{workload} {fmt(value(g, 'per_superstep_us'))} us/step, resume "
                        f"{fmt(value(g, 'resume_s'), 1e3, 3)} ms")
    if sync:
        out.append("LG sqlite durability=sync: " + "; ".join(sync) + ".")
    fsync = []
    for workload in WORKLOADS:
        a, b = find(ours, workload, "file"), find(ours, workload, "file-nofsync")
        if a is not None and b is not None:
            fsync.append(f"{workload} {fmt(value(a, 'per_superstep_us'))} vs "
                         f"{fmt(value(b, 'per_superstep_us'))} us/step, resume "
                         f"{fmt(value(a, 'resume_s'), 1e3, 3)} vs {fmt(value(b, 'resume_s'), 1e3, 3)} ms")
    if fsync:
        out.append("S file fsync=True vs fsync=False: " + "; ".join(fsync) + ".")
    worker = [f"{row['workload']} {row['worker_resume_s'] * 1e3:.3f} ms" for row in ours
              if "worker_resume_s" in row]
    if worker:
        out.append("S django-sqlite resume through a worker's execution (claim the lease, "
                   "record events, update the run, publish live): " + "; ".join(worker) + ".")
    growth = growth_rows(ours)
    if growth:
        out.append("S pingpong, Django store on SQLite, as the run grows (bytes stored; restore "
                   "of the newest checkpoint into a fresh instance): " + "; ".join(
                       f"{steps:,} steps {row['checkpoint_bytes_total'] / 1e3:,.1f} KB, "
                       f"{row['restore_newest_s'] * 1e3:.3f} ms (through a worker "
                       f"{row['worker_restore_newest_s'] * 1e3:.3f} ms)"
                       for steps, row in sorted(growth.items())) + ".")
        spread = growth.get(2000, {}).get("restore_ratio_by_process")
        if spread:
            out.append(f"S restore at 2,000 steps against 200, medians over "
                       f"{growth[2000]['restores']} restores in {growth[2000]['processes']} "
                       f"fresh processes; the same ratio process by process: "
                       f"{', '.join(f'{r:.2f}' for r in spread)}.")
    for row in ours:
        if row.get("mode") == "qcluster":
            out.append(f"S approval through {row['workers']} qcluster workers: enqueue-to-first-"
                       f"superstep median {row['idle_enqueue_to_first_superstep_ms_median']} ms "
                       f"for a lone run on an idle cluster; {row['runs']} runs at once: median "
                       f"{row['enqueue_to_first_superstep_ms_median']} ms (p95 "
                       f"{row['enqueue_to_first_superstep_ms_p95']} ms), "
                       f"{row['runs_per_minute']} runs completed per minute.")
    return out


def growth_rows(ours: list[dict]) -> dict[int, dict]:
    return {row["supersteps"]: row for row in ours if row.get("workload") == "pingpong-growth"}


def check_targets(ours: list[dict], maf: list[dict], lg: list[dict]) -> list[dict[str, Any]]:
    verdicts = []
    growth = growth_rows(ours)
    for label, metric, max_ratio in GROWTH_TARGETS:
        small, large = value(growth.get(200), metric), value(growth.get(2000), metric)
        if small is None or large is None:
            verdicts.append({"target": label, "verdict": "MISSING", "stepstone": large,
                             "maf": small})
            continue
        verdicts.append({"target": label, "verdict": "PASS" if large <= small * max_ratio
                         else "FAIL", "metric": metric, "at_200": small, "at_2000": large,
                         "ratio": large / small, "max_ratio": max_ratio})
    for label, workload, storage, metric, fraction, *peer in TARGETS:
        peer_name, peer_storage = peer or ("maf", storage)
        s = value(find(ours, workload, storage), metric)
        m = value(find(maf, workload, peer_storage) if peer_name == "maf"
                  else lg_row(lg, workload, "file") if peer_storage == "sqlite"
                  else None, metric)
        if s is None or m is None:
            verdicts.append({"target": label, "verdict": "MISSING", "stepstone": s, "maf": m})
            continue
        limit = m * fraction
        verdicts.append({"target": label, "verdict": "PASS" if s <= limit else "FAIL",
                         "metric": metric, "stepstone": s, "maf": m, "limit": limit,
                         "ratio": s / m, "max_ratio": fraction})
    return verdicts


def describe_verdict(v: dict[str, Any]) -> str:
    if v["verdict"] == "MISSING":
        return f"MISSING  {v['target']}  (no figure: stepstone={v['stepstone']}, maf={v['maf']})"
    if "at_200" in v:
        scale, unit = (1e3, "ms") if v["metric"].endswith("_s") else (1e-3, "KB")
        return (f"{v['verdict']:<5} {v['target']}: {v['at_2000'] * scale:,.3f} {unit} vs "
                f"{v['at_200'] * scale:,.3f} {unit} (ratio {v['ratio']:.2f}, "
                f"max {v['max_ratio']:.0f})")
    if v["metric"] == "resume_s":
        s, m, lim, unit = v["stepstone"] * 1e3, v["maf"] * 1e3, v["limit"] * 1e3, "ms"
        digits = 3
    elif v["metric"] == "checkpoint_bytes_total":
        s, m, lim, unit, digits = (v["stepstone"] / 1e3, v["maf"] / 1e3, v["limit"] / 1e3,
                                   "KB", 1)
    else:
        s, m, lim, unit, digits = v["stepstone"], v["maf"], v["limit"], "us", 1
    return (f"{v['verdict']:<5} {v['target']}: Stepstone {s:.{digits}f} {unit} vs limit "
            f"{lim:.{digits}f} {unit} (peer {m:.{digits}f} {unit}; ratio {v['ratio']:.3f}, "
            f"max {v['max_ratio']:.3f})")


def report(ours: list[dict], maf: list[dict], lg: list[dict]) -> list[dict[str, Any]]:
    print("\n".join(table(ours, maf, lg)))
    print()
    print("\n".join(notes(ours, maf, lg)))
    verdicts = check_targets(ours, maf, lg)
    print()
    print("Targets (Stepstone vs the peers, same run):")
    for v in verdicts:
        print("  " + describe_verdict(v))
    passed = sum(v["verdict"] == "PASS" for v in verdicts)
    print(f"{passed}/{len(verdicts)} targets met"
          + ("" if passed == len(verdicts) else "  <-- SOME TARGETS FAILED"))
    return verdicts


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where to write every parsed line (default benchmarks/results/"
                             "latest.json)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions for reference.py (the peers always use 5)")
    parser.add_argument("--no-django", action="store_true",
                        help="skip the Django store benchmark (django_bench.py)")
    parser.add_argument("--worker", action="store_true",
                        help="also run the approval workflow through real qcluster workers")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="re-print the report of a saved --out file instead of running")
    args = parser.parse_args(argv)

    if args.source is not None:
        saved = json.loads(args.source.read_text())
        report(saved["stepstone"], saved["maf"], saved["langgraph"])
        return 0

    reference_cmd = [sys.executable, str(REFERENCE), "--json-meta"]
    if args.reps is not None:
        reference_cmd += ["--reps", str(args.reps)]
    peers_cmd = [str(PEERS), "run"]
    started = datetime.datetime.now(datetime.timezone.utc)
    ref_rc, ours = run(reference_cmd)
    django_cmd = [sys.executable, str(DJANGO_BENCH)] + ([] if args.worker else ["--skip-worker"])
    if args.reps is not None:
        django_cmd += ["--reps", str(args.reps)]
    if not args.no_django:
        django_rc, django_rows = run(django_cmd)
        ours += django_rows
        ref_rc = ref_rc or django_rc
    peers_rc, peer_rows = run(peers_cmd)
    maf, lg = split_peers(peer_rows)
    # peers.sh has set MAF's venv up; the sub-workflow pingpong is ours, not a shared script
    maf_python = Path(os.environ.get("PEER_VENVS", HERE.parent / ".bench-venvs")) / "maf/bin/python"
    sub_cmd = [str(maf_python), str(MAF_SUBPINGPONG)]
    sub_rc, sub_rows = run(sub_cmd) if maf_python.exists() else (1, [])
    maf_sub = [row for row in sub_rows if "workload" in row]

    verdicts = report(ours, maf + maf_sub, lg)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "started_at": started.isoformat(),
        "commands": {"stepstone": reference_cmd, "peers": peers_cmd, "maf_subpingpong": sub_cmd},
        "exit_codes": {"stepstone": ref_rc, "peers": peers_rc, "maf_subpingpong": sub_rc},
        "stepstone": ours,
        "maf": maf + maf_sub,
        "langgraph": lg,
        "targets": verdicts,
    }, indent=2) + "\n")
    print(f"\nraw lines written to {args.out}")

    failures = []
    if ref_rc != 0 or not any("workload" in r for r in ours):
        failures.append(f"reference.py failed (exit {ref_rc})")
    if peers_rc != 0 or not maf or not lg:
        failures.append(f"peers.sh run failed (exit {peers_rc})")
    if sub_rc != 0 or not maf_sub:
        failures.append(f"maf_subpingpong.py failed (exit {sub_rc})")
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
