"""The ``camwarp`` command line: ``camwarp camera``, ``camwarp stn train|eval``, ``camwarp demo``,
``camwarp prepare``.

This package parses arguments and calls the library; it holds no geometry. Each sub-command lives
in its own module with ``register(subparsers)``, which adds its parser and sets ``func``. Bad
arguments give a one-line error naming the flag and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "ArgumentParser", "CliError"]

# Sub-command modules, imported only when the command line names them (fast `camwarp --help`).
COMMANDS = {
    "camera": ("camwarp.cli.camera", "print or convert camera intrinsics after a chain of image ops"),
    "stn": ("camwarp.cli.stn", "train and evaluate spatial transformer networks on distorted MNIST"),
    "demo": ("camwarp.cli.demo", "train a small ST-CNN on embedded digits and show the seed camera example"),
    "prepare": ("camwarp.cli.prepare", "apply a chain of ops to a dataset folder, cameras included"),
}


class CliError(Exception):
    """A user error found after parsing (a bad value); printed as one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str]) -> ArgumentParser:
    parser = ArgumentParser(prog="camwarp", description=__doc__.split("\n\n")[0])
    from camwarp import __version__

    parser.add_argument("--version", action="version", version=f"camwarp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        if name == wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError, TypeError, FileNotFoundError) as err:
        print(f"camwarp {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
