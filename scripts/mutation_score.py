#!/usr/bin/env python3
"""Print the mutation score of the last ``mutmut run`` (``make mutation``), per module.

Reads mutmut's result files (``mutants/**/*.py.meta``, mutmut 3: each mutant's exit code of
the test run). A mutant is *detected* when the tests failed on it (killed) or hung on it
(timed out: the suite would never pass); *survived* means every test passed; *no tests* means
no test calls the mutated function. Score = detected / (detected + survived + no tests).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

MUTANTS = Path(__file__).resolve().parent.parent / "mutants"
DETECTED = {1, 3, 36, 24, -24, 152, 255}  # mutmut 3: killed (1, 3) or timeout
SURVIVED = {0}
NO_TESTS = {5, 33}


def main() -> int:
    metas = sorted(MUTANTS.rglob("*.py.meta"))
    if not metas:
        print("no results: run `make mutation` first", file=sys.stderr)
        return 1
    total: Counter = Counter()
    print(f"{'module':<44} {'detected':>8} {'survived':>8} {'no tests':>8} {'score':>7}")
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"].values()
        counts = Counter("detected" if c in DETECTED else "survived" if c in SURVIVED
                         else "no tests" if c in NO_TESTS else "unchecked" for c in codes)
        if not sum(counts.values()):
            continue
        total.update(counts)
        module = str(meta.relative_to(MUTANTS))[: -len(".meta")]
        print(f"{module:<44} {_row(counts)}")
    print(f"{'all':<44} {_row(total)}")
    if total["unchecked"]:
        print(f"({total['unchecked']} mutants not checked yet)")
    return 0


def _row(counts: Counter) -> str:
    judged = counts["detected"] + counts["survived"] + counts["no tests"]
    score = f"{100 * counts['detected'] / judged:.1f}%" if judged else "-"
    return (f"{counts['detected']:>8} {counts['survived']:>8} {counts['no tests']:>8} "
            f"{score:>7}")


if __name__ == "__main__":
    sys.exit(main())
