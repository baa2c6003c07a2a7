"""The run page at 100 and at 10,000 supersteps: its size, the server's time, Chromium's load.

With a real daphne and qcluster, run two ``long-loop`` runs to completion (50 rounds: 100
supersteps, 101 checkpoints; 5,000 rounds: 10,000 supersteps, 10,001 checkpoints), then
fetch each run page repeatedly with a logged-in session and load it in headless Debian
Chromium. Prints one JSON object with, per run: the HTML size, the median and p95 of the time
to the last byte of the page (loopback HTTP: that is the server's time), the median time
until Chromium's ``load`` event, and whether the targets hold:

- HTML at most 300 KB at 10,000 supersteps;
- server time at 10,000 supersteps at most 3x that at 100, and at most 300 ms (median);
- loaded in Chromium within 1 s (median).

    .venv/bin/python benchmarks/run_page.py [--rounds 5000] [--repeat 15]

Needs the test extra (``pip install -e '.[test]'``, for playwright) and ``/usr/bin/chromium``
(``apt-get install chromium``; never ``playwright install``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser import CHROMIUM, launch_chromium, open_site  # noqa: E402
from tests.installation import PRODUCTION_TIMINGS as TIMINGS  # noqa: E402

SMALL_ROUNDS = 50  # 100 supersteps
MAX_HTML_BYTES = 300 * 1024
MAX_SERVER_RATIO = 3.0
MAX_SERVER_MS = 300
MAX_LOAD_MS = 1000


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def measure_page(page, url: str, repeat: int) -> dict:
    """Fetch ``url`` ``repeat`` times with the page's session, then load it in the page."""
    page.request.get(url)  # warm: templates compiled, connections open
    server_ms, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = page.request.get(url)
        body = response.body()
        server_ms.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, f"{url} answered {response.status}"
        size = len(body)
    load_ms = []
    for _ in range(max(3, repeat // 3)):
        started = time.perf_counter()
        page.goto(url, wait_until="load")
        load_ms.append((time.perf_counter() - started) * 1000)
    return {"html_bytes": size, "server_median_ms": round(statistics.median(server_ms), 1),
            "server_p95_ms": round(percentile(server_ms, 0.95), 1),
            "chromium_load_median_ms": round(statistics.median(load_ms), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5000, help="rounds of the long run")
    parser.add_argument("--repeat", type=int, default=15, help="fetches of each page")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the runs")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    data_dir = Path(tempfile.mkdtemp(prefix="stepstone-run-page-"))
    site = open_site(data_dir, **TIMINGS)
    installation = site.installation
    try:
        runs = {"small": installation.start_run("long-loop", {"rounds": SMALL_ROUNDS}),
                "large": installation.start_run("long-loop", {"rounds": args.rounds})}
        started = time.monotonic()
        cluster = site.start_cluster()
        try:
            for run_id in runs.values():
                status = installation.wait_status(run_id, "completed", "failed",
                                                  timeout=args.timeout)["status"]
                assert status == "completed", f"run {run_id} {status}"
        finally:
            cluster.kill()
        run_seconds = time.monotonic() - started
        results = {}
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            site.log_in(page)
            for name, run_id in runs.items():
                results[name] = {"supersteps": installation.run(run_id)["current_superstep"],
                                 **measure_page(page, f"{site.url}/runs/{run_id}/",
                                                args.repeat)}
            browser.close()
    except BaseException:
        print(site.logs(), file=sys.stderr)
        raise
    finally:
        installation.close()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    small, large = results["small"], results["large"]
    ratio = large["server_median_ms"] / max(small["server_median_ms"], 0.1)
    targets = {
        f"html <= {MAX_HTML_BYTES // 1024} KB": large["html_bytes"] <= MAX_HTML_BYTES,
        f"server <= {MAX_SERVER_RATIO:g}x the small run's": ratio <= MAX_SERVER_RATIO,
        f"server median <= {MAX_SERVER_MS} ms": large["server_median_ms"] <= MAX_SERVER_MS,
        f"chromium load <= {MAX_LOAD_MS} ms": large["chromium_load_median_ms"] <= MAX_LOAD_MS,
    }
    print(json.dumps({
        "benchmark": "run_page", "workflow": "long-loop", "chromium": CHROMIUM,
        "seconds_to_run_both": round(run_seconds, 1), "small": small, "large": large,
        "server_ratio": round(ratio, 2),
        "targets": {name: "PASS" if held else "FAIL" for name, held in targets.items()},
    }, indent=2))
    sys.exit(0 if all(targets.values()) else 1)


if __name__ == "__main__":
    main()
