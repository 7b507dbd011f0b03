"""Options shared by several subcommands, the training-setting flags made from
``TrainConfig``'s description of each setting, and the flags of other settings dataclasses
described with ``digitrec.settings`` (the service's)."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, get_args

from digitrec.data import DATA_DIR_ENV, DATASETS
from digitrec.errors import DigitrecError
from digitrec.settings import Setting, described, range_wanted
from digitrec.training.config import TrainConfig, description, flag, setting_types
from digitrec.training.models import MODELS


def add_data_options(
    parser: argparse.ArgumentParser, dataset_default: str | None = "mnist"
) -> None:
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), default=dataset_default, help="dataset name"
    )
    add_data_dir_option(parser)


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=existing_folder,
        metavar="DIR",
        help=f"directory holding the IDX files (default: ${DATA_DIR_ENV}, then the user cache)",
    )


def existing_folder(text: str) -> str:
    """A folder that exists (a typo is an error, not a silent search elsewhere)."""
    if not Path(text).is_dir():
        reason = "is a file, not a folder" if Path(text).exists() else "no such folder"
        raise argparse.ArgumentTypeError(f"{text}: {reason}")
    return text


def add_setting_options(
    parser: argparse.ArgumentParser,
    names: tuple[str, ...] | None = None,
    intro: str = "Defaults as shown; a model's recipe (listed below) replaces some, a "
    "--params file replaces those, and flags replace all.",
) -> None:
    """A flag for every training setting (``--batch-size`` for ``batch_size``), or for those
    ``names``, typed, with its choices, valid range and default in the help. A flag not given
    is ``None``, so that a model's recipe or a ``--params`` file can supply the value."""
    group = parser.add_argument_group("training settings", textwrap.fill(intro, 77))
    defaults = TrainConfig().to_dict()
    for f in fields(TrainConfig):
        if names is not None and f.name not in names:
            continue
        kind, rules = setting_types()[f.name], description(f.name)
        default = defaults[f.name]
        shown = json.dumps(default) if isinstance(default, (dict, list)) else default
        limits = f"; {rules.bounds()}" if rules.bounds() else ""
        options: dict[str, Any] = {
            "dest": f.name,
            "default": None,
            "help": f"{rules.help} (default: {shown}{limits})".replace("%", "%%"),
        }
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif kind == list[str]:  # a repeatable flag
            options.update(action="append", metavar=rules.metavar)
        else:
            registered = list(rules.registry) if rules.registry is not None else []
            options["choices"] = rules.choices or registered or None
            options["type"] = kind if kind in (int, float, str) else json_value
            options["metavar"] = rules.metavar
        group.add_argument(flag(f.name), **options)


def settings_given(
    args: argparse.Namespace, names: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """The training settings given as flags (of those ``names``, if given)."""
    return {
        name: getattr(args, name)
        for name in names or tuple(setting_types())
        if getattr(args, name, None) is not None
    }


def add_settings_flags(group: argparse._ActionsContainer, settings_class: type) -> None:
    """A flag for every described setting of ``settings_class`` (``--port`` for ``port``, or
    the setting's own flag), its value checked as it is parsed, so that a bad one is a one-line
    error naming the flag. A flag not given is ``None``: the setting keeps its default, which the
    help states."""
    defaults = settings_class()
    for name, (kind, rules) in described(settings_class).items():
        default = getattr(defaults, name)
        if rules.default_text is not None:
            shown = rules.default_text
        elif isinstance(default, (int, float)):
            shown = f"{default / (rules.unit.size if rules.unit else 1):g}"
        else:
            shown = default
        group.add_argument(
            rules.flag_of(name),
            dest=name,
            type=flag_reader(kind, rules),
            choices=rules.choices or None,
            metavar=rules.unit.name if rules.unit else rules.metavar,
            help=(f"{rules.help} (default: {shown})" if shown else rules.help).replace("%", "%%"),
        )


def flag_reader(kind: Any, rules: Setting) -> Callable[[str], Any]:
    """An argparse type for a setting's flag: the text as the setting's value (a size given in a
    larger unit made the setting's own), or the error argparse prints after the flag."""
    number = next((k for k in (*get_args(kind), kind) if k in (int, float)), None)

    def read(text: str) -> Any:
        try:
            if rules.parse:
                return rules.parse(text)
            if number is None:
                return text
            whole = rules.unit.whole if rules.unit else number is int
            value = read_number(text, whole, rules.in_flag_unit())
            return max(1, round(value * rules.unit.size)) if rules.unit else value
        except DigitrecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return read


def read_number(text: str, whole: bool, rules: Setting) -> float:
    """A flag's number, within the rules' range."""
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        noun = "a whole number" if whole else "a number"
        raise DigitrecError(f"expected {noun}, not {text!r}") from None
    wanted = range_wanted(value, rules)
    if wanted:
        raise DigitrecError(f"must be {wanted}, not {value if whole else text}")
    return value


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None


def models_epilog(width: int = 79) -> str:
    """The registered models, each with its description and recipe, for ``--help``."""
    lines = ["models (--model NAME), each with the settings of its recipe:"]
    for spec in MODELS.values():
        recipe = ", ".join(f"{key}={json.dumps(value)}" for key, value in spec.recipe.items())
        text = f"{spec.description}. Recipe: {recipe or 'the defaults'}."
        lines += textwrap.wrap(
            text, width, initial_indent=f"  {spec.name:<8}", subsequent_indent=" " * 10
        )
    return "\n".join(lines)
