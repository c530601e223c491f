"""Dispatcher for scripts/bench: runs the benchmark suites and prints one markdown
table (figure, snoopd, kernel bridge, ratio), or one JSON object with --json."""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

SUITES = ("core", "kernel", "software")


def print_table(rows: list[tuple[str, str, str, str]],
                header: tuple[str, str, str, str] = ("figure", "snoopd", "kernel bridge", "ratio")) -> None:
    """The markdown table every benchmark prints (also when a suite runs on its own)."""
    for row in (header, ("---",) * 4, *rows):
        print("| " + " | ".join(row) + " |")


def run_suite(name: str) -> tuple[dict[str, float], list[tuple[str, str, str, str]]]:
    """Each suite module has run() -> (json figures, table rows)."""
    module = __import__(f"bench_{name}")
    result: tuple[dict[str, float], list[tuple[str, str, str, str]]] = module.run()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument("suite", nargs="?", choices=SUITES, help="one suite (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()
    suites = [args.suite] if args.suite else list(SUITES)
    figures: dict[str, float] = {}
    rows: list[tuple[str, str, str, str]] = []
    for name in suites:
        try:
            f, r = run_suite(name)
        except ModuleNotFoundError as exc:
            print(f"suite {name}: not available ({exc})", file=sys.stderr)
            continue
        figures.update(f)
        rows += r
    if args.json:
        print(json.dumps(figures, indent=None, sort_keys=True))
        return 0
    print(f"snoopd benchmarks, {time.strftime('%Y-%m-%d')}, {platform.node()}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"kernel {platform.release()}\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
