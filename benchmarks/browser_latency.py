"""Live-update latency as a browser sees it: worker event -> websocket -> Chromium.

With a real daphne, a real qcluster and headless Debian Chromium, open the run page of a
``long-loop`` run and measure, for every ``superstep_completed`` event, the time from the
event's ``created_at`` (stamped by the worker when it records the event) to its arrival in
the page. Everything between is included: group commit, the publisher thread, the SQLite
channel layer, daphne and the run page's websocket.

The run page's script announces each live event it applies as a ``stepstone:event`` DOM
event; ``tests.browser.record_live_events`` collects them in the page as
``{seq, type, created_at, received_at}``, where ``created_at`` is the event's ISO timestamp
as sent and ``received_at`` is ``Date.now()`` when the page applied it (events the page
loaded with are not announced; each seq appears once).

Each run is started while no worker runs; once the page's socket is live a qcluster is
started, so every event of the run is pushed to an open page (the cluster is stopped again
between runs). Prints one JSON object: median/p95 (ms) over all runs, and how many events
the page received of those the database holds.

    .venv/bin/python benchmarks/browser_latency.py [--runs 3] [--rounds 60] [--step-ms 50]

Needs the test extra (``pip install -e '.[test]'``, for playwright) and ``/usr/bin/chromium``
(``apt-get install chromium``; never ``playwright install``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser import (CHROMIUM, launch_chromium, open_site,  # noqa: E402
                           record_live_events)
from tests.installation import PRODUCTION_TIMINGS as TIMINGS  # noqa: E402



def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


def measure_run(site, page, rounds: int, step_ms: int, timeout: float) -> dict:
    installation = site.installation
    run_id = installation.start_run("long-loop", {"rounds": rounds, "step_ms": step_ms})
    record_live_events(page)
    page.goto(f"{site.url}/runs/{run_id}/")
    page.wait_for_selector('#connection[data-state="live"]', timeout=15_000)
    cluster = site.start_cluster()
    try:
        installation.wait_status(run_id, "completed", "failed", timeout=timeout)
        expected = {e["seq"]: e for e in installation.events(run_id)
                    if e["type"] == "superstep_completed"}
        # The last events may still be on their way to the page.
        deadline = time.monotonic() + 10
        while True:
            received = page.evaluate("window.__liveEvents.filter("
                                     "e => e.type === 'superstep_completed')")
            if {e["seq"] for e in received} >= set(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        cluster.kill()
    seqs = [e["seq"] for e in received]
    latencies = [e["received_at"] - epoch_ms(e["created_at"]) for e in received]
    return {"run_id": run_id, "status": installation.run(run_id)["status"],
            "expected": len(expected), "received": len(received),
            "duplicates": len(seqs) - len(set(seqs)), "latencies_ms": latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--step-ms", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per run")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    data_dir = Path(tempfile.mkdtemp(prefix="stepstone-browser-latency-"))
    site = open_site(data_dir, **TIMINGS)
    results = []
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            site.log_in(page)
            for _ in range(args.runs):
                results.append(measure_run(site, page, args.rounds, args.step_ms, args.timeout))
            browser.close()
    except BaseException:
        print(site.logs(), file=sys.stderr)
        raise
    finally:
        site.installation.close()
        if not args.keep:
            import shutil
            shutil.rmtree(data_dir, ignore_errors=True)

    latencies = [ms for r in results for ms in r["latencies_ms"]]
    report = {
        "benchmark": "browser_latency",
        "what": "superstep_completed: event created_at (worker) -> arrival in Chromium (ms)",
        "workflow": "long-loop", "rounds": args.rounds, "step_ms": args.step_ms,
        "runs": len(results),
        "statuses": [r["status"] for r in results],
        "events_expected": sum(r["expected"] for r in results),
        "events_received": sum(r["received"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "median_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
        "min_ms": round(min(latencies), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "per_run_median_ms": [round(statistics.median(r["latencies_ms"]), 1)
                              if r["latencies_ms"] else None for r in results],
        "chromium": CHROMIUM,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
