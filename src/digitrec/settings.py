"""Settings as data: each field of a settings dataclass describes itself once (its help, its
valid values, how the command line takes it), and values are checked from that description.

The service's settings (``digitrec.serve.settings``) are declared with it, and ``digitrec
serve``'s flags and their checks are made from it (``digitrec.cli.options``). A shared leaf, like
``digitrec.errors``: it imports no wing or door.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import NoneType, UnionType
from typing import Any, get_args, get_origin, get_type_hints

from digitrec.errors import DigitrecError

BOUNDS = ("at_least", "above", "at_most", "below")


@dataclass(frozen=True)
class Unit:
    """The unit a flag takes a size in, where it is not the setting's own (``--max-body-mb``
    for ``max_body_bytes``): the flag's value times ``size``, rounded, and at least one."""

    name: str  # the flag's metavar: "MB"
    size: int  # the setting's units in one of it
    whole: bool = False  # the flag takes whole numbers of it only


@dataclass(frozen=True)
class Setting:
    """How one setting is explained and checked (bounds are for numbers, in the setting's own
    unit), and how the command line takes it."""

    help: str
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()
    # Where the valid names are registered (offered on the command line).
    registry: Mapping[str, Any] | None = None
    metavar: str | None = None
    flag: str | None = None  # the flag, if not named for the setting: "--collect"
    unit: Unit | None = None
    parse: Callable[[str], Any] | None = None  # a flag's text as the value; DigitrecError if bad
    default_text: str | None = None  # the default as the help states it ("": the help says it)

    def bounds(self) -> str:
        """The valid range in signs, e.g. ``>= 0 and < 1``; empty if any value goes."""
        return self._range((">=", ">", "<=", "<"), str)

    def limits(self) -> str:
        """The valid range in words, e.g. ``from 1 to 65535`` or ``above 0``."""
        if self.above is None and self.below is None and None not in (self.at_least, self.at_most):
            return f"from {_number(self.at_least)} to {_number(self.at_most)}"
        return self._range(("at least", "above", "at most", "below"), _number)

    def _range(self, words: tuple[str, ...], shown: Callable[[float], str]) -> str:
        limits = [getattr(self, bound) for bound in BOUNDS]
        return " and ".join(
            f"{word} {shown(limit)}"
            for word, limit in zip(words, limits, strict=True)
            if limit is not None
        )

    def admits(self, value: float) -> bool:
        return not (
            (self.at_least is not None and value < self.at_least)
            or (self.above is not None and value <= self.above)
            or (self.at_most is not None and value > self.at_most)
            or (self.below is not None and value >= self.below)
        )

    def in_flag_unit(self) -> Setting:
        """These rules with the bounds in the flag's unit."""
        if self.unit is None:
            return self
        limits = {bound: getattr(self, bound) for bound in BOUNDS}
        size = self.unit.size
        return replace(self, **{b: v / size for b, v in limits.items() if v is not None})

    def flag_of(self, name: str) -> str:
        """The flag of the setting ``name`` that these rules describe."""
        return self.flag or flag(name)


def about(help: str, **rules: Any) -> dict[str, Setting]:
    """Field metadata describing a setting."""
    return {"setting": Setting(help, **rules)}


def setting(default: Any, help: str, **rules: Any) -> Any:
    """A settings field with an immutable default and its description."""
    return field(default=default, metadata=about(help, **rules))


def flag(name: str) -> str:
    """The command-line flag of a setting: ``batch_size`` → ``--batch-size``."""
    return "--" + name.replace("_", "-")


def described(settings_class: type) -> dict[str, tuple[Any, Setting]]:
    """The described settings of a settings dataclass, in order: each one's type and rules."""
    kinds = get_type_hints(settings_class)
    return {
        f.name: (kinds[f.name], f.metadata["setting"])
        for f in fields(settings_class)
        if "setting" in f.metadata
    }


def check_settings(settings: Any) -> None:
    """Check every described setting of a frozen settings dataclass (in its ``__post_init__``):
    each has its type and lies in its range (numbers made plain ``int`` or ``float``, lists of
    names tuples), else a ``DigitrecError`` naming the setting and its flag."""
    for name, (kind, rules) in described(type(settings)).items():
        object.__setattr__(settings, name, checked(name, getattr(settings, name), kind, rules))


def checked(name: str, value: Any, kind: Any, rules: Setting) -> Any:
    """``value`` as a setting of type ``kind`` (``X | None`` takes None), or a clear error."""
    kinds = get_args(kind) if isinstance(kind, UnionType) else (kind,)
    if value is None and NoneType in kinds:
        return None
    kind = next(k for k in kinds if k is not NoneType)
    wrong = f"{name} ({rules.flag_of(name)}) must be"
    if kind is bool:
        if not isinstance(value, bool):
            raise DigitrecError(f"{wrong} true or false, not {value!r}")
    elif kind in (int, float):
        number = numbers.Integral if kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, number):
            noun = "a whole number" if kind is int else "a number"
            raise DigitrecError(f"{wrong} {noun}, not {value!r}")
        value = kind(value)
        wanted = range_wanted(value, rules)
        if wanted:
            raise DigitrecError(f"{wrong} {wanted}, not {value}")
    elif kind is str:
        if not isinstance(value, str):
            raise DigitrecError(f"{wrong} text, not {value!r}")
        if rules.choices and value not in rules.choices:
            raise DigitrecError(f"{wrong} one of {', '.join(rules.choices)}, not {value!r}")
    elif get_origin(kind) is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise DigitrecError(f"{wrong} a list of names, not {value!r}")
        value = tuple(value)
    elif kind == list[str]:
        value = _names_or_paths(value, rules, wrong)
    elif get_origin(kind) is dict:
        if not isinstance(value, dict):
            raise DigitrecError(f"{wrong} a mapping of argument names to values, not {value!r}")
        value = dict(value)
    else:  # a list of such mappings
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, dict) for v in value):
            raise DigitrecError(f"{wrong} a list of mappings of argument names, not {value!r}")
        value = [dict(v) for v in value]
    return value


def _names_or_paths(value: Any, rules: Setting, wrong: str) -> list[str]:
    """A list setting: distinct names of ``rules.choices`` where it has them, else non-empty
    paths (made text)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise DigitrecError(
            f"{wrong} a list of {'names' if rules.choices else 'paths'}, not {value!r}"
        )
    if rules.choices:
        if any(v not in rules.choices for v in value) or len(set(value)) < len(value):
            raise DigitrecError(
                f"{wrong} a list of distinct names of {', '.join(rules.choices)}, not {value!r}"
            )
    elif not all(isinstance(v, str | os.PathLike) and str(v) for v in value):
        raise DigitrecError(f"{wrong} a list of non-empty paths, not {value!r}")
    return [str(v) for v in value]


def _number(value: float) -> str:
    """A limit as a person writes it: a whole number in full, another in ``g`` form."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def range_wanted(value: float, rules: Setting) -> str | None:
    """What a number out of its range must be instead (``at least 1``, ``a finite number above
    0``: a real one must be finite); None if it is in range."""
    real = isinstance(value, float)
    if rules.admits(value) and (not real or math.isfinite(value)):
        return None
    return f"{'a finite number ' if real else ''}{rules.limits()}"
