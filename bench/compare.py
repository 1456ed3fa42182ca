"""Before and after: the same benchmarks on an earlier commit and on this working tree, alternated in one run.

This machine's speed drifts by half or more within an hour, so two builds measured one after the other compare
the moments, not the builds. This script checks `REF` out into a temporary git worktree and runs each benchmark
with `PYTHONPATH` pointing at one build's `src/`, then at the other's, round after round (the order of the two
builds alternates too), and prints the summary lines of each run side by side. The benchmarks themselves start
their own servers on 127.0.0.1 (bench/_server.py); the worktree is removed at the end, on errors and Ctrl-C too.

Usage: python bench/compare.py REF [--rounds N] [--bench NAME ...]
       (defaults: 2 rounds of `crud --quick` and `run_path --runs 100`; NAME is one of those below)
Exit status 0 when every benchmark ran; non-zero when one failed (its output is printed).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900

# the command of each benchmark, and the lines of its output that summarise a run
BENCHES: dict[str, tuple[list[str], str]] = {
    "crud": (["bench/crud.py", "--quick"], r"GET /health|POST /v1|GET /v1"),
    "run_path": (["bench/run_path.py", "--runs", "100"], r"runs/s|server CPU|first delta"),
    "runs": (["bench/runs.py", "--quick"], r"overhead, median|server/raw, median|POST -> run\.created|-> run\.in_"),
}


def run_bench(name: str, src: Path) -> list[str]:
    """The summary lines of one run of benchmark `name` against the build whose sources are `src`."""
    command, summary = BENCHES[name]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} on {src} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return [line.rstrip() for line in done.stdout.splitlines() if re.search(summary, line)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the earlier commit (any git revision)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bench", action="append", choices=sorted(BENCHES), help="repeatable")
    args = parser.parse_args()
    names = args.bench or ["crud", "run_path"]
    with tempfile.TemporaryDirectory(prefix="assistd-compare-") as scratch:
        tree = Path(scratch) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.ref], cwd=ROOT, check=True)
        try:
            builds = {f"before ({args.ref})": tree / "src", "after (working tree)": ROOT / "src"}
            for round_number in range(1, args.rounds + 1):
                order = list(builds.items())
                if round_number % 2 == 0:
                    order.reverse()
                for label, src in order:
                    for name in names:
                        print(f"== round {round_number}, {label}: {name}", flush=True)
                        for line in run_bench(name, src):
                            print(line, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
