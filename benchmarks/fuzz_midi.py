"""A larger MIDI fuzz run than the test suite's: mutated Bach10 scores through `render`.

Uses the mutations and workers of tests/test_fuzz_midi.py (same 2 GB address-space limit per
worker, same render options) and prints the counts: files tried, clean errors (exit 2,
one line), successes (exit 0), tracebacks, other broken promises, and the most common
error messages. Exits 1 when any file broke the promise.

Usage: python benchmarks/fuzz_midi.py [--files 3000] [--seed 1] [--workers 2] [--show 10]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_fuzz_midi as fuzz


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=fuzz.SEED + 1)
    parser.add_argument("--workers", type=int, default=fuzz.WORKERS)
    parser.add_argument("--show", type=int, default=10, help="How many problems and messages to print.")
    args = parser.parse_args()

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz_midi.") as tmp:
        results = fuzz.run_fuzz(Path(tmp), args.seed, args.files, args.workers)
    elapsed = time.perf_counter() - t0
    found = fuzz.problems(results)
    counts = fuzz.counts(results)
    print(f"seed {args.seed}: {counts['files']} files tried, {counts['clean_errors']} clean errors, "
          f"{counts['successes']} successes, {counts['tracebacks']} tracebacks, "
          f"{len(found)} broken promises in {elapsed:.1f} s ({args.workers} workers); "
          f"worker peak RSS {max((r['maxrss_mb'] for r in results), default=0):.0f} MB")
    slowest = sorted(results, key=lambda r: r["seconds"])[-3:]
    print("slowest files: " + ", ".join(f"{Path(r['path']).name} {r['seconds']:.2f} s" for r in slowest if r["path"]))
    messages = collections.Counter()
    for r in results:
        if r["status"] == 2 and r["stderr"]:
            text = r["stderr"].strip().split(".mid: ", 1)[-1]
            messages[re.sub(r"\d+(\.\d+)?", "N", text)[:100]] += 1
    for text, n in messages.most_common(args.show):
        print(f"{n:6d}  {text}")
    for problem in found[: args.show]:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
