"""The ``digitrec`` command line: one subcommand per module in this package.

Each subcommand module defines ``add_parser(subparsers)``, which registers its options and sets
``run``, a function of the parsed arguments returning the exit status. Heavy libraries
(TensorFlow above all) are imported inside ``run``, so that ``digitrec predict`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from digitrec import __version__
from digitrec.errors import DigitrecError

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
    "fastapi": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitrec", description="Train, evaluate and use handwritten digit recognizers."
    )
    parser.add_argument("--version", action="version", version=f"digitrec {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"digitrec.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    args = build_parser().parse_args(argv)
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
