"""The search space: each model's registered space, changed by a space file and fixed settings.

Keys are ``TrainConfig`` fields, or ``model_args.NAME`` for the builder's keyword arguments;
values are ``Param`` entries, written as in a search-space file.
"""

from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import optuna

from digitrec.errors import DigitrecError
from digitrec.training.config import SCHEDULES, TrainConfig, resolve_config
from digitrec.training.models import model_spec

NOT_SEARCHABLE = ("model", "dataset", "model_args", "member_args")
DERIVED_DROPOUT = (0.0, 0.6)  # a float argument named *dropout*, in a derived space


@dataclass(frozen=True)
class Param:
    """One searched setting: a float or int range (optionally log-scaled), or a list of choices."""

    type: str  # "float", "int" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Param:
        """Read and check one entry of a search-space file; a ``ValueError`` says what is wrong."""
        kind = data.get("type")
        unknown = set(data) - {"type", "low", "high", "log", "choices"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        if kind == "categorical":
            choices = data.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ValueError("a categorical parameter needs a non-empty list of choices")
            return cls("categorical", choices=tuple(choices))
        if kind not in ("float", "int"):
            raise ValueError(f"type must be float, int or categorical, not {kind!r}")
        low, high, log = data.get("low"), data.get("high"), data.get("log", False)
        numbers = (int,) if kind == "int" else (int, float)
        if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (low, high)):
            raise ValueError(f"a {kind} parameter needs {kind} low and high")
        if low > high or (log and low <= 0):
            raise ValueError(f"bad range [{low}, {high}]" + (" for a log scale" if log else ""))
        return cls(kind, low, high, bool(log))


def default_space(model: str) -> dict[str, Param]:
    """The settings searched for a model: the space it was registered with, checked, or for a
    model registered without one, the space ``derived_space`` makes from its recipe."""
    declared = model_spec(model).space
    if declared is None:
        return derived_space(model)
    space = {}
    for key, entry in declared.items():
        check_setting(model, key)
        space[key] = parsed(entry, f"model {model!r}: search space: {key}")
    return space


def derived_space(model: str) -> dict[str, Param]:
    """A space from the recipe and the builder's signature, for a model registered without one.

    Ranges are centred on the recipe: learning rate from a tenth to ten times, epochs from half
    to one and a half times; schedule, batch size, label smoothing and augmentation strength.
    A builder argument typed ``Literal[...]`` is searched among its values, a float named
    ``*dropout*`` in [0, 0.6], any other positive float from a tenth to ten times its default
    (log scale), an integer of at least 2 from half to twice; every other argument is reported
    in a warning as not searched.
    """
    recipe = resolve_config(model)
    rate = recipe.learning_rate
    space = {
        "learning_rate": Param("float", rate / 10, rate * 10, log=True),
        "schedule": Param("categorical", choices=SCHEDULES),
        "batch_size": Param("categorical", choices=(32, 64, 128, 256)),
        "label_smoothing": Param("float", 0.0, 0.2),
        "epochs": Param("int", max(1, recipe.epochs // 2), max(2, recipe.epochs * 3 // 2)),
        "augment": Param("float", 0.0, 1.0),
    }
    hints = get_type_hints(model_spec(model).build)
    unsearched = []
    for name, default in builder_defaults(model).items():
        param = argument_param(name, recipe.model_args.get(name, default), hints.get(name))
        if param is None:
            unsearched.append(name)
        else:
            space[f"model_args.{name}"] = param
    if unsearched:
        warnings.warn(
            f"model {model!r} has no registered search space, and its builder arguments "
            f"{', '.join(unsearched)} are not searched: add them in a --space file "
            "(model_args.NAME), or register the model with space=",
            stacklevel=2,
        )
    return space


def argument_param(name: str, default: Any, hint: Any) -> Param | None:
    """How ``derived_space`` searches one builder argument; None: not at all."""
    if get_origin(hint) is Literal:  # the builder names the only values that fit
        return Param("categorical", choices=get_args(hint))
    if isinstance(default, float) and "dropout" in name:
        return Param("float", *DERIVED_DROPOUT)
    if isinstance(default, float) and default > 0:
        return Param("float", default / 10, default * 10, log=True)
    if isinstance(default, int) and not isinstance(default, bool) and default >= 2:
        return Param("int", max(1, default // 2), default * 2, log=True)
    return None


def parsed(entry: dict[str, Any], where: str) -> Param:
    """``Param.from_dict`` with its complaint turned into a clear error saying where."""
    try:
        return Param.from_dict(entry)
    except ValueError as exc:
        raise DigitrecError(f"{where}: {exc}") from None


def train_fields() -> set[str]:
    return {f.name for f in fields(TrainConfig)}


def builder_defaults(model: str) -> dict[str, Any]:
    """The keyword arguments of a model's builder (besides ``num_classes``) with their defaults."""
    signature = inspect.signature(model_spec(model).build)
    return {
        name: p.default
        for name, p in signature.parameters.items()
        if name != "num_classes" and p.default is not inspect.Parameter.empty
    }


def check_setting(model: str, key: str) -> None:
    """Fail unless ``key`` names a searchable training setting or an argument of the builder."""
    section, _, arg = key.partition(".")
    builder = builder_defaults(model)
    if section == "model_args" and arg:
        open_builder = any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in inspect.signature(model_spec(model).build).parameters.values()
        )
        if open_builder or arg in builder:
            return
    elif key in train_fields() and key not in NOT_SEARCHABLE:
        return
    known = sorted(train_fields() - set(NOT_SEARCHABLE)) + [f"model_args.{a}" for a in builder]
    raise DigitrecError(
        f"search space: {key!r} is not a training setting or an argument of {model!r}; "
        f"known: {', '.join(known)}"
    )


def read_space_file(path: Path) -> dict[str, Any]:
    """A JSON or YAML mapping of setting → parameter entry, fixed value, or null (not searched)."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DigitrecError(f"cannot read search-space file {path}: {exc.strerror}") from None
    try:
        content = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DigitrecError(f"search-space file {path} is not valid JSON/YAML: {exc}") from None
    if not isinstance(content, dict):
        raise DigitrecError(f"search-space file {path} must hold a mapping of setting names")
    return content


def resolve_space(
    model: str, space_file: Path | None = None, fixed: dict[str, Any] | None = None
) -> tuple[dict[str, Param], dict[str, Any]]:
    """The model's default space, changed by a space file, less the settings fixed by the caller.

    Returns the searched parameters and the fixed settings (flat keys, as in the space).
    """
    space, fixed = default_space(model), dict(fixed or {})
    entries = read_space_file(space_file) if space_file else {}
    for key, entry in {**entries, **{k: None for k in fixed}}.items():
        check_setting(model, key)
        space.pop(key, None)
        if isinstance(entry, dict):
            space[key] = parsed(entry, f"search space {space_file}: {key}")
        elif entry is not None and key not in fixed:
            fixed[key] = entry
    if "val_size" not in fixed and resolve_config(model).val_size <= 0:
        fixed["val_size"] = TrainConfig().val_size  # a recipe's final fit on all images: hold out
    return space, fixed


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat space keys (``model_args.dropout``) → ``TrainConfig.updated`` overrides."""
    overrides: dict[str, Any] = {}
    for key, value in flat.items():
        section, _, arg = key.partition(".")
        if arg:
            overrides.setdefault(section, {})[arg] = value
        else:
            overrides[key] = value
    return overrides
