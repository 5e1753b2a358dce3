"""``slugkit TEXT...``: print the slug of each argument."""

import argparse
from collections.abc import Sequence

from slugkit.core import slugify


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slugkit", description=__doc__)
    parser.add_argument("text", nargs="+")
    parser.add_argument("--separator", default="-")
    parser.add_argument("--max-length", type=int, default=0)
    args = parser.parse_args(argv)
    for text in args.text:
        print(slugify(text, separator=args.separator, max_length=args.max_length))
    return 0
