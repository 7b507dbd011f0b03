"""Options shared by several subcommands, and the training-setting flags made from
``TrainConfig``'s description of each setting."""

from __future__ import annotations

import argparse
import json
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

from digitrec.data import DATA_DIR_ENV, DATASETS
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
