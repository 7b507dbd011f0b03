"""The ``digitrec`` command line: one subcommand per module in this package.

Each subcommand module defines ``add_parser(subparsers)``, which registers its options and sets
``run``, a function of the parsed arguments returning the exit status. Heavy libraries
(TensorFlow above all) are imported inside ``run``, so that ``digitrec predict`` starts fast, and
so that TensorFlow's log lines can be hidden before it loads (``--verbose`` shows them).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable

from digitrec import __version__
from digitrec.errors import DigitrecError
from digitrec.quiet import quiet_tensorflow

COMMANDS = ("data", "train", "evaluate", "export", "predict", "tune", "serve")


# Packages of the optional extras, and the extra that installs each.
EXTRAS = {
    "tensorflow": "train",
    "keras": "train",
    "sklearn": "train",
    "matplotlib": "train",
    "onnx": "train",
    "tf2onnx": "train",
    "optuna": "train",
    "optuna_integration": "train",
    "yaml": "train",
    "tensorboard": "train",
    "psycopg": "scale",
    "fastapi": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitrec", description="Train, evaluate and use handwritten digit recognizers."
    )
    parser.add_argument("--version", action="version", version=f"digitrec {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's log lines and known harmless library warnings, hidden by default "
        "(before the command: digitrec --verbose train ...)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"digitrec.cli.{name}").add_parser(subparsers)
    return parser


def progress_printer() -> Callable[[str], None]:
    """A function printing each step of a long command on stderr, after the seconds so far."""
    start = time.monotonic()

    def show(message: str) -> None:
        print(f"[{time.monotonic() - start:5.1f} s] {message}", file=sys.stderr, flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_tensorflow()
    try:
        return args.run(args)
    except DigitrecError as exc:
        print(f"digitrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        print(
            f"digitrec {args.command}: needs {top}, which is not installed: "
            f"pip install 'digitrec[{EXTRAS[top]}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"digitrec {args.command}: interrupted", file=sys.stderr)
        return 130
