"""``digitrec train-lines``: make the page reader's line model and its filter by their recipe,
as the shipped ``lines.onnx`` was made, into a run directory; or continue a stopped one."""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

from digitrec.cli.options import add_data_dir_option
from digitrec.errors import DigitrecError
from digitrec.quiet import progress_printer
from digitrec.read.image_folders import string_labels
from digitrec.read.loader import CROP_LINE_MODEL
from digitrec.training.line_settings import (
    ARCHITECTURE,
    CARD_FILE,
    RECIPE_FILE,
    STRINGS_FLAGS,
    LineRecipe,
    StringsRecipe,
    from_init,
    init_model_file,
    labels_digest,
    quick_recipe,
    quick_strings_recipe,
    recipe_options,
    recorded_recipe,
    with_values,
)
from digitrec.training.rundir import check_new_run_dir

METAVARS = {int: "N", float: "X", str: "NAME"}
# The flags that only fine-tuning on your strings takes, and the recipe's settings they set.
STRINGS_ONLY = {
    "--val-share": "val_share",
    "--augment": "augment",
    "--generated-share": "generated_share",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-lines",
        help="make the page reader's line model and filter by the shipped recipe",
        description=textwrap.fill(
            "Train the line model, then its line filter, export RUN/lines.onnx checked against "
            "Keras, fit its rejection on validation pages and write its model card "
            "RUN/lines.card.md. The defaults are the shipped model's recipe; --quick runs it "
            "at a tiny scale. A stopped run continues with --resume RUN. "
            "Read with the result: digitrec predict IMAGE --lines RUN. "
            "--init SOURCE --strings DIR fine-tunes a line model (a shipped one, 'documents' "
            "by default, or a train-lines run) on your own written numbers instead: DIR holds "
            "their images and a labels.csv (columns file,text); read with the result: "
            "digitrec predict IMAGE --model RUN.",
            79,
        ),
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, metavar="RUN", help="run directory to create (new)")
    where.add_argument(
        "--resume", type=Path, metavar="RUN", help="continue a stopped run with its recipe"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the recipe at a tiny scale, end to end in a minute or two (a smoke test, not a "
        "model to read with); the flags below still apply",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_data_dir_option(parser)
    own = parser.add_argument_group(
        "fine-tuning on your strings (--epochs, --batch-size, --learning-rate, --seed, "
        "--val-lines, --rejection-pages and --card-pages apply to it too)"
    )
    own.add_argument(
        "--strings",
        type=Path,
        metavar="DIR",
        help="fine-tune on the images of written numbers in DIR, listed with their digits in "
        "DIR/labels.csv (columns file,text; others ignored)",
    )
    own.add_argument(
        "--init",
        metavar="SOURCE",
        help="the line model to start from: a shipped one, 'documents' (the one that reads crops "
        "of one number; with --strings, the default) or 'default' (the page model), or a "
        "complete train-lines run; its architecture and line filter are kept",
    )
    own.add_argument(
        "--val-share",
        type=float,
        metavar="X",
        help="with --strings: the share of your strings held out to choose the epoch "
        f"(default: {StringsRecipe().val_share})",
    )
    own.add_argument(
        "--augment",
        type=float,
        metavar="X",
        help="with --strings: how strongly your strings are distorted in training, 0 to 2 "
        f"(default: {StringsRecipe().augment})",
    )
    own.add_argument(
        "--generated-share",
        type=float,
        metavar="X",
        help="with --strings: the share of each batch that is generated lines, which keep what "
        f"the model read before; the rest are your strings (default: "
        f"{StringsRecipe().generated_share})",
    )
    add_recipe_options(parser)
    parser.set_defaults(run=run)


def add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """A flag for every setting of the recipe, typed, with its default and choices in the help;
    one not given is ``None``."""
    groups = {
        "lines": parser.add_argument_group("line model"),
        "filter": parser.add_argument_group("line filter"),
        "": parser.add_argument_group("rejection and model card"),
    }
    defaults = LineRecipe()
    for option in recipe_options():
        rules = option.rules
        limits = f"; {rules.bounds()}" if rules.bounds() else ""
        help = f"{rules.help} (default: {option.value(defaults)}{limits})"
        groups[option.part].add_argument(
            option.flag,
            dest=option.dest,
            type=option.kind,
            choices=rules.choices or None,
            metavar=None if rules.choices else METAVARS[option.kind],
            help=help.replace("%", "%%"),
        )


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe's settings given as flags, by ``RecipeOption.dest``."""
    options = recipe_options()
    return {o.dest: getattr(args, o.dest) for o in options if getattr(args, o.dest) is not None}


def recipe_from(args: argparse.Namespace) -> LineRecipe:
    """The recipe of a new run: the shipped one (or ``--quick``'s), with the flags given; with
    ``--init``, the line model starts from that model and keeps its architecture and filter."""
    given = given_settings(args)
    recipe = with_values(quick_recipe() if args.quick else LineRecipe(), given)
    if args.init:
        fixed = [f"--{name}" for name in ARCHITECTURE if f"lines.{name}" in given]
        if fixed:
            raise DigitrecError(
                f"--init starts from a trained line model, whose architecture it keeps: leave "
                f"out {', '.join(fixed)}"
            )
        init_model_file(args.init)
        recipe = replace(recipe, lines=from_init(recipe.lines, args.init))
    recipe.check()
    return recipe


def strings_recipe_from(args: argparse.Namespace) -> StringsRecipe:
    """The recipe of a new fine-tuning run: the strings folder checked (its layout, before
    anything trains) and the starting model found; the flags that apply to it, and no other."""
    flags = {o.dest: o.flag for o in recipe_options()}
    given = given_settings(args)
    others = [flags[dest] for dest in given if dest not in STRINGS_FLAGS]
    if others:
        raise DigitrecError(
            f"--strings fine-tunes a trained line model, whose architecture and filter it "
            f"keeps: leave out {', '.join(others)}"
        )
    string_labels(args.strings)
    init = args.init or CROP_LINE_MODEL
    init_model_file(init)
    digest = labels_digest(args.strings)
    base = (
        quick_strings_recipe(str(args.strings), digest, init)
        if args.quick
        else StringsRecipe(str(args.strings), digest, init)
    )
    values = {STRINGS_FLAGS[dest]: value for dest, value in given.items()}
    for name in STRINGS_ONLY.values():
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    recipe = replace(base, **values)
    recipe.check()
    return recipe


def check_resume_alone(args: argparse.Namespace) -> None:
    """A resumed run keeps its recorded recipe: refuse flags that would be ignored."""
    flags = {o.dest: o.flag for o in recipe_options()}
    ignored = [flags[dest] for dest in given_settings(args)] + ["--quick"] * args.quick
    strings_flags = {"--strings": args.strings, "--init": args.init}
    strings_flags |= {flag: getattr(args, name) for flag, name in STRINGS_ONLY.items()}
    ignored += [flag for flag, value in strings_flags.items() if value is not None]
    if ignored:
        raise DigitrecError(
            f"--resume continues a run with the recipe in its {RECIPE_FILE}; "
            f"leave out {', '.join(ignored)}"
        )


def run(args: argparse.Namespace) -> int:
    if args.resume:
        check_resume_alone(args)
        recipe, run_dir = recorded_recipe(args.resume), args.resume
    elif args.strings:
        recipe, run_dir = strings_recipe_from(args), args.out
        check_new_run_dir(run_dir)
    else:
        given = [flag for flag, name in STRINGS_ONLY.items() if getattr(args, name) is not None]
        if given:
            raise DigitrecError(f"{', '.join(given)} fine-tune on your strings: add --strings DIR")
        recipe, run_dir = recipe_from(args), args.out
        check_new_run_dir(run_dir)
    from digitrec.training.line_recipe import train_lines  # TensorFlow: after the checks

    progress = None if args.quiet else progress_printer()
    try:
        model = train_lines(recipe, run_dir, args.data_dir, progress)
    except KeyboardInterrupt:
        if (run_dir / RECIPE_FILE).exists():
            print(
                f"\ninterrupted: continue with  digitrec train-lines --resume {run_dir}",
                file=sys.stderr,
            )
        else:
            print("\ninterrupted before the first epoch was saved: nothing kept", file=sys.stderr)
        return 130
    print(f"line model  {model}")
    print(f"model card  {run_dir / CARD_FILE}")
    if isinstance(recipe, StringsRecipe):
        print(f"read with it: digitrec predict IMAGE --model {run_dir}")
    else:
        print(f"read with it: digitrec predict IMAGE --lines {run_dir}")
    return 0
