"""The ``digitrec`` command line: one subcommand per module in this package.

Each subcommand module defines ``add_parser(subparsers)``, which registers its options and sets
``run``, a function of the parsed arguments returning the exit status. Heavy libraries
(TensorFlow above all) are imported inside ``run``, so that ``digitrec predict`` starts fast, and
so that TensorFlow's log lines can be hidden before it loads (``--verbose`` shows them).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from digitrec import __version__
from digitrec.errors import DigitrecError
from digitrec.quiet import quiet_tensorflow

COMMANDS = ("data", "train", "train_lines", "evaluate", "export", "predict", "tune", "serve")


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


class CommandParser(argparse.ArgumentParser):
    """argparse without prefix matching (``--epoch`` is not taken for ``--epochs``), whose
    errors for an unknown command, flag or choice suggest the nearest known one."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})
        self.commands: argparse._SubParsersAction | None = None

    def add_subparsers(self, **kwargs: Any) -> argparse._SubParsersAction:
        self.commands = super().add_subparsers(**kwargs)
        return self.commands

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            parser = self.command_parser(parsed)
            flags = [option for action in parser._actions for option in action.option_strings]
            hint = suggestion(unknown, flags)
            parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
        return parsed

    def command_parser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The parser of the command given (this one if none was)."""
        if self.commands is None:
            return self
        return self.commands.choices.get(getattr(parsed, self.commands.dest, None), self)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's check of a value against an argument's choices (commands included)
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as error:
            near = nearest(str(value), map(str, action.choices or ()))
            hint = f": did you mean {near!r}?" if near else ""
            raise argparse.ArgumentError(action, error.message + hint) from None


def nearest(word: str, known: Iterable[str]) -> str | None:
    """The known word closest to ``word`` (flags compared without their dashes), if one is close."""
    names = {name.lstrip("-"): name for name in known}
    close = difflib.get_close_matches(word.lstrip("-"), list(names), n=1, cutoff=0.6)
    return names[close[0]] if close else None


def suggestion(unknown: list[str], flags: list[str]) -> str:
    """The hint "did you mean --json?" for the unknown flags that are near a known one."""
    pairs = []
    for argument in unknown:
        flag = argument.partition("=")[0]
        near = nearest(flag, flags) if flag.startswith("-") else None
        if near:
            pairs.append((flag, near))
    if len(pairs) == 1:
        return f": did you mean {pairs[0][1]}?"
    if pairs:
        return ": did you mean " + ", ".join(f"{near} for {flag}" for flag, near in pairs) + "?"
    return ""


def add_global_options(parser: argparse.ArgumentParser, default: Any = False) -> None:
    """The options every command takes, before or after its name. A command's parser adds them
    with ``default=argparse.SUPPRESS``, so that it keeps what was given before the command."""
    parser.add_argument("--version", action="version", version=f"digitrec {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=default,
        help="show TensorFlow's log lines and known harmless library warnings, hidden by default",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="digitrec", description="Train, evaluate and use handwritten digit recognizers."
    )
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"digitrec.cli.{name}").add_parser(subparsers)
    for command in subparsers.choices.values():
        add_global_options(command, default=argparse.SUPPRESS)
    return parser


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
