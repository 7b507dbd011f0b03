"""The line model's recipe as data (no TensorFlow): the settings of the CTC line recognizer's
training, of its line filter's, and of the steps after them (``line_recipe`` runs them all). The
defaults are the recipe of the shipped ``lines.onnx``, whose metadata records them.

``digitrec train-lines`` makes a flag of every field (its ``help`` and ``choices`` metadata) and
checks the settings before TensorFlow loads.
"""

from __future__ import annotations

import shlex
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from digitrec.data import DATASETS
from digitrec.errors import DigitrecError
from digitrec.files import read_json
from digitrec.read.line_reader import STRIDE
from digitrec.read.loader import LINE_MODEL
from digitrec.synth.style import WriterShapes
from digitrec.training.config import PRECISIONS, SCHEDULES

RECIPE_FILE = "recipe.json"  # a train-lines run's recipe, written when it starts
CARD_FILE = "lines.card.md"  # its model card, written last: the run is complete
HEADS = ("lstm", "conv")
STRIDES = (2, STRIDE)  # model pixels per time step: a 2x2 and a 2x1 pooling, or two 2x2 ones


def option(default: Any, help: str, choices: tuple[Any, ...] = ()) -> Any:
    """A recipe field: its default, and what ``digitrec train-lines --help`` says of it."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class LineTrainSettings(WriterShapes):
    """Every setting of a line recognizer's training run; ``run.json`` stores it whole (with
    ``WriterShapes``: the training lines' other writers' shapes)."""

    # After the same 800 steps, the LSTM read 75.8% of 2,000 new validation lines exactly, the
    # convolutions 72.0% (156 lines only the LSTM read, 80 only the convolutions), at the same
    # speed in ONNX Runtime; a training step costs about a third more.
    head: str = option(
        "lstm", "over the time steps: a bidirectional LSTM or two 1-D convolutions", HEADS
    )
    width: int = option(32, "filters of the first convolution; the next ones have 2x and 4x")
    units: int = option(128, "features per time step, and the LSTM's or 1-D convolutions'")
    # At 2, twice the steps, for narrow digits (a 1 in a touching number); a training step
    # takes about 1.3x as long.
    stride: int = option(STRIDE, "model pixels per time step", STRIDES)
    dropout: float = option(0.2, "dropout before and after the head")
    epochs: int = option(44, "epochs of training lines")
    steps_per_epoch: int = option(200, "batches of new training lines per epoch")
    batch_size: int = option(32, "training lines per batch")
    learning_rate: float = option(3e-3, "Adam's peak learning rate")
    schedule: str = option("onecycle", "learning-rate schedule", SCHEDULES)
    warmup: float = option(0.1, "fraction of the steps spent warming up (onecycle)")
    seed: int = option(0, "seed of the training lines and the model's weights")
    dataset: str = option("mnist", "whose training images the lines are made of")
    val_lines: int = option(1000, "lines made of validation digits, to choose the best epoch")
    val_size: int = option(5000, "the last training images: the validation split")
    # The exported model computes in float32 throughout.
    precision: str = option(
        "float32",
        "bfloat16: the convolutions compute in bfloat16 (float32 weights), the head in float32",
        PRECISIONS,
    )

    def check(self) -> None:
        """Raise ``DigitrecError`` for settings no run can use."""
        for name in ("head", "schedule", "precision"):
            check_choice(self, name)
        if self.stride not in STRIDES:
            raise DigitrecError(
                f"stride must be one of {', '.join(map(str, STRIDES))}, not {self.stride}"
            )
        if self.dataset not in DATASETS:
            raise DigitrecError(f"unknown dataset {self.dataset!r}; known: {', '.join(DATASETS)}")
        counts = ("width", "units", "epochs", "steps_per_epoch", "batch_size", "val_lines")
        bad = [f"{name} {getattr(self, name)}" for name in counts if getattr(self, name) < 1]
        if bad:
            raise DigitrecError(f"these settings must be at least 1: {', '.join(bad)}")
        if not 0 <= self.dropout < 1:
            raise DigitrecError(f"dropout must be in [0, 1), not {self.dropout}")
        self.training_style()  # refuses shapes out of range


@dataclass
class FilterSettings(WriterShapes):
    """Every setting of a line filter's training; ``filter.json`` records it."""

    width: int = option(16, "filters of the first convolution; then 2x, 4x and 4x as many")
    pages_per_layout: int = option(1000, "training pages of every layout")
    val_pages_per_layout: int = option(50, "validation pages of every layout")
    drawn: int = option(3000, "drawing-pad images for training; a twentieth more for validation")
    epochs: int = option(10, "epochs over the crops")
    batch_size: int = option(32, "crops per batch")
    learning_rate: float = option(2e-3, "Adam's learning rate")
    seed: int = option(0, "seed of the pages, the drawings and the weights")

    def check(self) -> None:
        """Raise ``DigitrecError`` for settings no run can use."""
        bad = [
            f"{name} {value}"
            for name, value in asdict(self).items()
            if name not in ("seed", *(shape.name for shape in fields(WriterShapes)))
            and not value > 0
        ]
        if bad:
            raise DigitrecError(f"these settings must be positive: {', '.join(bad)}")
        self.training_style()  # refuses shapes out of range


@dataclass
class LineRecipe:
    """The whole recipe of a line model: its training, its filter's, the validation pages of
    every layout the rejection is fitted on, and those the model card's figures are read on."""

    lines: LineTrainSettings = field(default_factory=LineTrainSettings)
    filter: FilterSettings = field(default_factory=FilterSettings)
    rejection_pages: int = option(100, "validation pages of every layout to fit the rejection on")
    card_pages: int = option(
        30, "validation pages of every layout the model card's figures are read on; 0 = none"
    )

    def check(self) -> None:
        """Raise ``DigitrecError`` for a recipe no run can follow."""
        self.lines.check()
        self.filter.check()
        if self.rejection_pages < 1 or self.card_pages < 0:
            raise DigitrecError(
                f"rejection_pages must be at least 1 and card_pages at least 0, not "
                f"{self.rejection_pages} and {self.card_pages}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineRecipe:
        """The recipe ``asdict`` gave (``recipe.json``); ``TypeError`` or ``KeyError`` if not one."""
        parts = {
            "lines": LineTrainSettings(**data["lines"]),
            "filter": FilterSettings(**data["filter"]),
        }
        return cls(**{**data, **parts})


def quick_recipe() -> LineRecipe:
    """The recipe at a tiny scale, run end to end in about a minute on two cores: a smoke test
    of the steps (``train-lines --quick``), not a model worth reading with."""
    return LineRecipe(
        lines=LineTrainSettings(
            width=8, units=16, epochs=1, steps_per_epoch=4, batch_size=8, val_lines=16
        ),
        filter=FilterSettings(
            width=4, pages_per_layout=1, val_pages_per_layout=1, drawn=8, epochs=1
        ),
        rejection_pages=1,
        card_pages=1,
    )


def check_choice(settings: Any, name: str) -> None:
    """Raise ``DigitrecError`` if a setting is not one of its field's ``choices``."""
    choices = settings.__dataclass_fields__[name].metadata["choices"]
    value = getattr(settings, name)
    if value not in choices:
        raise DigitrecError(f"unknown {name} {value!r}; known: {', '.join(choices)}")


@dataclass(frozen=True)
class RecipeOption:
    """A setting of the recipe as a ``digitrec train-lines`` flag: the line training's settings
    as themselves (``--epochs``), the filter's with ``--filter-``, the recipe's own as they are."""

    part: str  # "lines", "filter", or "" for the recipe's own settings
    setting: Field
    kind: type

    @property
    def flag(self) -> str:
        prefix = "--filter-" if self.part == "filter" else "--"
        return prefix + self.setting.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return f"{self.part}.{self.setting.name}" if self.part else self.setting.name

    def value(self, recipe: LineRecipe) -> Any:
        return getattr(getattr(recipe, self.part) if self.part else recipe, self.setting.name)


def recipe_options() -> list[RecipeOption]:
    """Every setting of a ``LineRecipe``, as a flag."""
    options = []
    for part, kind in (("lines", LineTrainSettings), ("filter", FilterSettings), ("", LineRecipe)):
        types = get_type_hints(kind)
        options += [
            RecipeOption(part, f, types[f.name])
            for f in sorted(fields(kind), key=lambda f: f.kw_only)  # WriterShapes' last
            if types[f.name] in (int, float, str)
        ]
    return options


def with_values(recipe: LineRecipe, values: dict[str, Any]) -> LineRecipe:
    """The recipe with the settings named by their ``RecipeOption.dest`` replaced."""
    parts: dict[str, dict[str, Any]] = {"lines": {}, "filter": {}, "": {}}
    for dest, value in values.items():
        part, _, name = dest.rpartition(".")
        parts[part][name] = value
    return replace(
        recipe,
        lines=replace(recipe.lines, **parts["lines"]),
        filter=replace(recipe.filter, **parts["filter"]),
        **parts[""],
    )


def recipe_flags(recipe: LineRecipe) -> list[str]:
    """The fewest ``digitrec train-lines`` flags that make ``recipe``: those that differ from
    the defaults, or ``--quick`` and those that differ from its recipe."""
    return min(
        _flags_from(recipe, LineRecipe(), []),
        _flags_from(recipe, quick_recipe(), ["--quick"]),
        key=len,
    )


def _flags_from(recipe: LineRecipe, base: LineRecipe, flags: list[str]) -> list[str]:
    """``flags``, then the flags of the settings of ``recipe`` that differ from ``base``'s."""
    return flags + [
        f"{option.flag} {shlex.quote(str(option.value(recipe)))}"
        for option in recipe_options()
        if option.value(recipe) != option.value(base)
    ]


def recorded_recipe(run_dir: Path) -> LineRecipe:
    """The recipe of a stopped ``train-lines`` run, to continue; a ``DigitrecError`` for a
    folder that holds no such run, or a complete one."""
    if not (run_dir / RECIPE_FILE).is_file():
        raise DigitrecError(
            f"{run_dir} is not a train-lines run (no {RECIPE_FILE}); start one with --out"
        )
    if (run_dir / CARD_FILE).is_file():
        raise DigitrecError(
            f"{run_dir} is already complete: its line model is {run_dir / LINE_MODEL}"
        )
    try:
        return LineRecipe.from_dict(read_json(run_dir / RECIPE_FILE))
    except (ValueError, KeyError, TypeError) as exc:
        raise DigitrecError(f"cannot read the recipe in {run_dir / RECIPE_FILE}: {exc}") from None
