"""``python -m snoopd.config example|reference``: print text generated from the schema."""

from __future__ import annotations

import sys

from snoopd.config.example import render_example, render_reference


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "example"
    if what == "example":
        sys.stdout.write(render_example())
    elif what == "reference":
        sys.stdout.write(render_reference())
    else:
        sys.stderr.write("usage: python -m snoopd.config [example|reference]\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
