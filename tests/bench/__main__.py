"""Run every ``tests/bench/bench_*.py`` module's ``main()`` one after the other.

They share the benchmark database (``ENGAGE_BENCH_DATABASE_URL``) and each
rebuilds its schema, so they must not run at the same time. ``--only NAME`` picks
modules (e.g. ``--only delivery``); ``--quick`` runs each that knows a small size (under two
minutes in all) and skips the others.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description="engage benchmarks")
    parser.add_argument("--only", action="append", default=[], help="run only bench_<NAME> (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small sizes: every benchmark in under two minutes")
    args = parser.parse_args()
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n.removeprefix("bench_") in args.only or n in args.only]
    for name in names:
        module = importlib.import_module(f"tests.bench.{name}")
        quick = args.quick and '"--quick"' in inspect.getsource(module)
        if args.quick and not quick:
            print(f"\n######## {name}: skipped (no --quick size; run it with --only) ########", flush=True)
            continue
        started = time.perf_counter()
        print(f"\n######## {name} ########", flush=True)
        # each main() reads its own (default) arguments
        sys.argv = [f"tests.bench.{name}", *(["--quick"] if quick else [])]
        module.main()
        print(f"######## {name} done in {time.perf_counter() - started:.0f}s ########", flush=True)


if __name__ == "__main__":
    main()
