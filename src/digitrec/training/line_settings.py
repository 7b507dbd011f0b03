"""The line model's recipe as data (no TensorFlow): the settings of the CTC line recognizer's
training, of its line filter's, and of the steps after them (``line_recipe`` runs them all). The
defaults are the recipe of the shipped ``lines.onnx``, whose metadata records them.

Each field describes itself as ``digitrec.settings`` has it (help, choices, range), which the
checks and ``digitrec train-lines``' flags are made from, before TensorFlow loads.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from digitrec.assets import default_keras_path
from digitrec.data import DATASETS
from digitrec.errors import DigitrecError, ModelError
from digitrec.files import read_json
from digitrec.read.image_folders import STRING_LABELS
from digitrec.read.line_reader import STRIDE, LineReader
from digitrec.read.loader import CROP_LINE_MODEL, LINE_MODEL, SHIPPED_LINE_MODELS
from digitrec.settings import Setting, described, range_wanted, setting
from digitrec.synth.style import WriterShapes
from digitrec.training.config import MAX_SEED, PRECISIONS, SCHEDULES

RECIPE_FILE = "recipe.json"  # a train-lines run's recipe, written when it starts
CARD_FILE = "lines.card.md"  # its model card, written last: the run is complete
FINE_TUNING = "fine_tuning"  # a fine-tuning run's recipe.json holds its StringsRecipe under it
# The shipped line models as Keras weights, by the names that load them (``SHIPPED_LINE_MODELS``),
# and their line filters (made by tools/lines_keras.py, each batch normalization folded into the
# identity: fine-tuning from them keeps it frozen).
SHIPPED_KERAS = {
    name: str(Path(onnx_file).with_suffix(".keras"))
    for name, onnx_file in SHIPPED_LINE_MODELS.items()
}
SHIPPED_FILTERS = {
    name: f"{Path(onnx_file).stem}-filter.keras" for name, onnx_file in SHIPPED_LINE_MODELS.items()
}
SHIPPED_LINES = SHIPPED_KERAS["default"]
HEADS = ("lstm", "conv")
SOURCES = ("pages", "documents")  # synth.pages.line_samples, synth.documents.document_lines
REAL_SETS = ("none", "cvl")  # real handwriting the lines may also be written with
# What a line model is made of: a model started from another (--init) keeps the other's.
ARCHITECTURE = ("head", "width", "units", "stride", "dropout", "precision")
STRIDES = (2, STRIDE)  # model pixels per time step: a 2x2 and a 2x1 pooling, or two 2x2 ones


def count(default: int, help: str, at_least: int = 1) -> Any:
    """A setting that counts things: at least one of them, unless said otherwise."""
    return setting(default, help, at_least=at_least)


def seed(help: str) -> Any:
    return setting(0, help, at_least=0, at_most=MAX_SEED)


@dataclass
class LineTrainSettings(WriterShapes):
    """Every setting of a line recognizer's training run; ``run.json`` stores it whole (with
    ``WriterShapes``: the training lines' other writers' shapes)."""

    # After the same 800 steps, the LSTM read 75.8% of 2,000 new validation lines exactly, the
    # convolutions 72.0% (156 lines only the LSTM read, 80 only the convolutions), at the same
    # speed in ONNX Runtime; a training step costs about a third more.
    head: str = setting(
        "lstm", "over the time steps: a bidirectional LSTM or two 1-D convolutions", choices=HEADS
    )
    width: int = count(32, "filters of the first convolution; the next ones have 2x and 4x")
    units: int = count(128, "features per time step, and the LSTM's or 1-D convolutions'")
    # At 2, twice the steps, for narrow digits (a 1 in a touching number); a training step
    # takes about 1.3x as long.
    stride: int = setting(STRIDE, f"model pixels per time step: {' or '.join(map(str, STRIDES))}")
    dropout: float = setting(0.2, "dropout before and after the head", at_least=0, below=1)
    epochs: int = count(44, "epochs of training lines")
    steps_per_epoch: int = count(200, "batches of new training lines per epoch")
    batch_size: int = count(32, "training lines per batch")
    learning_rate: float = setting(3e-3, "Adam's peak learning rate", above=0)
    schedule: str = setting("onecycle", "learning-rate schedule", choices=SCHEDULES)
    warmup: float = setting(
        0.1, "fraction of the steps spent warming up (onecycle)", at_least=0, at_most=1
    )
    seed: int = seed("seed of the training lines and the model's weights")
    dataset: str = setting("mnist", "whose training images the lines are made of")
    source: str = setting(
        "pages",
        "the lines: as on the generated pages, or 'documents': 60 percent of them with what real "
        "documents have (separators and end marks, joins, tight cells and rules, security "
        "backgrounds, grey paper, photos, printed text; synth.documents)",
        choices=SOURCES,
    )
    real: str = setting(
        "none",
        "real handwriting the lines are also written with, one writer a line: 'cvl' (CVL's "
        "train part; its valid part joins the validation lines; DIGITREC_REAL_DIR)",
        choices=REAL_SETS,
    )
    real_repeat: int = count(6, "times each real image is among the training digits")
    val_lines: int = count(1000, "lines made of validation digits, to choose the best epoch")
    val_size: int = count(5000, "the last training images: the validation split")
    # The exported model computes in float32 throughout.
    precision: str = setting(
        "float32",
        "bfloat16: the convolutions compute in bfloat16 (float32 weights), the head in float32",
        choices=PRECISIONS,
    )
    # The line model the training starts from (``init_model_file``): "" for new weights. Its
    # architecture is the starting model's (``from_init``), its batch normalization frozen.
    init: str = ""

    def check(self) -> None:
        """Raise ``DigitrecError`` for settings no run can use."""
        check_described(self)
        if self.init:
            init_model_file(self.init)
        if self.stride not in STRIDES:
            raise DigitrecError(
                f"stride must be one of {', '.join(map(str, STRIDES))}, not {self.stride}"
            )
        if self.dataset not in DATASETS:
            raise DigitrecError(f"unknown dataset {self.dataset!r}; known: {', '.join(DATASETS)}")
        self.training_style()  # refuses shapes out of range


@dataclass
class FilterSettings(WriterShapes):
    """Every setting of a line filter's training; ``filter.json`` records it."""

    width: int = count(16, "filters of the first convolution; then 2x, 4x and 4x as many")
    pages_per_layout: int = count(1000, "training pages of every layout")
    val_pages_per_layout: int = count(50, "validation pages of every layout")
    drawn: int = count(3000, "drawing-pad images for training; a twentieth more for validation")
    epochs: int = count(10, "epochs over the crops")
    batch_size: int = count(32, "crops per batch")
    learning_rate: float = setting(2e-3, "Adam's learning rate", above=0)
    seed: int = seed("seed of the pages, the drawings and the weights")

    def check(self) -> None:
        """Raise ``DigitrecError`` for settings no run can use."""
        check_described(self)
        self.training_style()  # refuses shapes out of range


@dataclass
class LineRecipe:
    """The whole recipe of a line model: its training, its filter's, the validation pages of
    every layout the rejection is fitted on, and those the model card's figures are read on."""

    lines: LineTrainSettings = field(default_factory=LineTrainSettings)
    filter: FilterSettings = field(default_factory=FilterSettings)
    rejection_pages: int = count(100, "validation pages of every layout to fit the rejection on")
    card_pages: int = count(
        30, "validation pages of every layout the model card's figures are read on", at_least=0
    )

    def check(self) -> None:
        """Raise ``DigitrecError`` for a recipe no run can follow."""
        for part, settings in (("line model", self.lines), ("line filter", self.filter)):
            try:
                settings.check()
            except DigitrecError as exc:
                raise DigitrecError(f"{part}: {exc}") from None
        check_described(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineRecipe:
        """The recipe ``asdict`` gave (``recipe.json``); ``TypeError`` or ``KeyError`` if not one."""
        parts = {
            "lines": LineTrainSettings(**data["lines"]),
            "filter": FilterSettings(**data["filter"]),
        }
        return cls(**{**data, **parts})


@dataclass
class StringsRecipe:
    """Fine-tuning a line model on your own written numbers (``train-lines --strings``): the
    folder (``labels.csv`` and images), the digest of its ``labels.csv`` (a resume with other
    data is refused), the model it starts from (a shipped one, by default the one that reads
    crops of one number, ``CROP_LINE_MODEL``, or a complete train-lines run), and how it trains:
    every batch ``generated_share`` generated lines and the rest your training strings
    (``line_strings``), batch normalization frozen, the epoch chosen by your held-out strings
    read exactly."""

    strings: str = ""
    labels_digest: str = ""
    init: str = CROP_LINE_MODEL
    val_share: float = setting(
        0.2, "share of your strings held out to choose the epoch", above=0, below=1
    )
    epochs: int = count(20, "epochs: passes over your training strings")
    batch_size: int = count(32, "lines per batch: yours and generated ones", at_least=2)
    # Measured as for learning_rate below, at 5e-4 x 20 epochs; generated share: held-out
    # amounts / CVL lines: 0.5: 90.2% / 76.0%, 0.67 (48 a batch): 87.9% / 81.3%, 0.75: 87.3% /
    # 83.0%; over the last five epochs the held-out amounts read 86.1% at 0.5, 86.4% at 0.75.
    generated_share: float = setting(
        0.75,
        "share of each batch that is generated lines, which keep what the model read before; "
        "the rest are your strings",
        above=0,
        below=1,
    )
    # Fine-tuning the documents model on 691 of the benchmark's 864 training amounts of
    # ORAND-CAR-A, the other 173 read exactly at the epoch kept / CVL valid writers' lines
    # (300, seed 1001) by the line model alone, 82.0% before: 2e-3 x 12 epochs 86.7% / 71.3%,
    # 1e-3 x 12 88.4% / 74.7%, 5e-4 x 20 90.2% / 76.0%, 3e-4 x 30 88.4% / 74.7%.
    learning_rate: float = setting(5e-4, "Adam's peak learning rate (one-cycle)", above=0)
    augment: float = setting(
        1.0,
        "strength of the distortions of your strings (0: none; 1: up to 15 percent wider or "
        "narrower, slanted by up to 0.2, 10 percent taller or shorter, 2 pixels up or down)",
        at_least=0,
        at_most=2,
    )
    seed: int = seed("seed of the split, the order of your strings and the generated lines")
    val_lines: int = count(1000, "generated validation lines the export reads (what is kept)")
    rejection_pages: int = count(50, "validation pages of every layout to fit the rejection on")
    card_pages: int = count(
        20, "validation pages of every layout the model card's figures are read on", at_least=0
    )

    def check(self) -> None:
        """Raise ``DigitrecError`` for a recipe no run can follow."""
        check_described(self)

    @property
    def own_per_batch(self) -> int:
        """How many of your strings each batch holds (the rest are generated lines)."""
        return max(1, round(self.batch_size * (1 - self.generated_share)))


# The flags of ``train-lines`` that also set a ``StringsRecipe`` (by ``RecipeOption.dest``).
STRINGS_FLAGS = {
    "lines.epochs": "epochs",
    "lines.batch_size": "batch_size",
    "lines.learning_rate": "learning_rate",
    "lines.seed": "seed",
    "lines.val_lines": "val_lines",
    "rejection_pages": "rejection_pages",
    "card_pages": "card_pages",
}


def quick_strings_recipe(
    strings: str, labels_digest: str, init: str = CROP_LINE_MODEL
) -> StringsRecipe:
    """Fine-tuning at a tiny scale (``train-lines --strings --quick``): a smoke test."""
    return StringsRecipe(
        strings,
        labels_digest,
        init,
        epochs=1,
        batch_size=8,
        val_lines=16,
        rejection_pages=1,
        card_pages=1,
    )


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


def check_described(settings: Any) -> None:
    """Raise ``DigitrecError`` for a described setting (``digitrec.settings``) out of its
    choices or its range."""
    for name, (kind, rules) in described(type(settings)).items():
        value = getattr(settings, name)
        if rules.choices and value not in rules.choices:
            raise DigitrecError(f"unknown {name} {value!r}; known: {', '.join(rules.choices)}")
        if kind in (int, float) and (wanted := range_wanted(value, rules)):
            raise DigitrecError(f"{name} must be {wanted}, not {value}")


@dataclass(frozen=True)
class RecipeOption:
    """A setting of the recipe as a ``digitrec train-lines`` flag: the line training's settings
    as themselves (``--epochs``), the filter's with ``--filter-``, the recipe's own as they are."""

    part: str  # "lines", "filter", or "" for the recipe's own settings
    name: str
    kind: type
    rules: Setting

    @property
    def flag(self) -> str:
        return ("--filter-" if self.part == "filter" else "--") + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return f"{self.part}.{self.name}" if self.part else self.name

    def value(self, recipe: LineRecipe) -> Any:
        return getattr(getattr(recipe, self.part) if self.part else recipe, self.name)


def recipe_options() -> list[RecipeOption]:
    """Every setting of a ``LineRecipe``, as a flag (the writers' shapes after the rest)."""
    options = []
    for part, kind in (("lines", LineTrainSettings), ("filter", FilterSettings), ("", LineRecipe)):
        shapes = {shape.name for shape in fields(WriterShapes)}
        settings = sorted(described(kind).items(), key=lambda item: item[0] in shapes)
        options += [RecipeOption(part, name, *description) for name, description in settings]
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
    the defaults, or ``--quick`` and those that differ from its recipe (``--init`` first, and
    then not the architecture, which is the starting model's)."""
    init = recipe.lines.init
    start = ["--init", shlex.quote(init)] if init else []
    return start + min(
        _flags_from(recipe, LineRecipe(), [], init),
        _flags_from(recipe, quick_recipe(), ["--quick"], init),
        key=len,
    )


def _flags_from(recipe: LineRecipe, base: LineRecipe, flags: list[str], init: str) -> list[str]:
    """``flags``, then the flags of the settings of ``recipe`` that differ from ``base``'s."""
    fixed = {f"lines.{name}" for name in ARCHITECTURE} if init else set()
    return flags + [
        f"{option.flag} {shlex.quote(str(option.value(recipe)))}"
        for option in recipe_options()
        if option.value(recipe) != option.value(base) and option.dest not in fixed
    ]


def recorded_recipe(run_dir: Path) -> LineRecipe | StringsRecipe:
    """The recipe of a stopped ``train-lines`` run (a fine-tuning one's is a ``StringsRecipe``),
    to continue; a ``DigitrecError`` for a folder that holds no such run, or a complete one."""
    if not (run_dir / RECIPE_FILE).is_file():
        raise DigitrecError(
            f"{run_dir} is not a train-lines run (no {RECIPE_FILE}); start one with --out"
        )
    if (run_dir / CARD_FILE).is_file():
        raise DigitrecError(
            f"{run_dir} is already complete: its line model is {run_dir / LINE_MODEL}"
        )
    try:
        recorded = read_json(run_dir / RECIPE_FILE)
        if FINE_TUNING in recorded:
            return strings_recipe_of(recorded[FINE_TUNING])
        return LineRecipe.from_dict(recorded)
    except (ValueError, KeyError, TypeError) as exc:
        raise DigitrecError(f"cannot read the recipe in {run_dir / RECIPE_FILE}: {exc}") from None


def strings_recipe_of(recorded: dict[str, Any]) -> StringsRecipe:
    """A recorded fine-tuning recipe; one recorded before ``generated_share`` was a setting
    trained on batches half generated."""
    return StringsRecipe(**{"generated_share": 0.5, **recorded})


def shipped_keras_path(name: str = SHIPPED_LINES) -> Path:
    """A shipped line model's Keras file (``SHIPPED_KERAS``, the default's unless named), or
    its filter's (``SHIPPED_FILTERS``): where ``train-lines --init NAME`` starts. Reading it
    needs Keras; finding it does not."""
    path = default_keras_path().with_name(name)  # beside the default classifier's
    if not path.is_file():
        raise ModelError(
            f"the line reader's Keras file ({name}) is not installed: reinstall digitrec"
        )
    return path


def recipe_record(recipe: LineRecipe | StringsRecipe) -> dict[str, Any]:
    """What ``recipe.json`` holds of a recipe (``recorded_recipe`` reads it back)."""
    if isinstance(recipe, StringsRecipe):
        return {FINE_TUNING: asdict(recipe)}
    return asdict(recipe)


def init_model_file(init: str) -> Path:
    """The Keras file fine-tuning starts from: a shipped line model's for its name
    (``SHIPPED_KERAS``), else a complete train-lines run's ``model.keras``; a ``DigitrecError``
    for anything else."""
    if init in SHIPPED_KERAS:
        return shipped_keras_path(SHIPPED_KERAS[init])
    run = Path(init)
    if not (run / "model.keras").is_file() or not (run / "run.json").is_file():
        raise DigitrecError(
            f"--init {init}: not a train-lines run (no model.keras and run.json in it); give "
            f"a shipped line model ({', '.join(SHIPPED_KERAS)}) or a complete train-lines run "
            "directory"
        )
    return run / "model.keras"


def init_settings(init: str) -> LineTrainSettings:
    """The training settings of the line model ``init`` names (its architecture among them)."""
    if init in SHIPPED_KERAS:
        return LineTrainSettings(**LineReader.load(init).metadata["training_settings"])
    return LineTrainSettings(**read_json(Path(init) / "run.json")["settings"])


def from_init(settings: LineTrainSettings, init: str) -> LineTrainSettings:
    """``settings`` for a training that starts from the line model ``init``: its architecture."""
    start = init_settings(init)
    return replace(settings, init=init, **{name: getattr(start, name) for name in ARCHITECTURE})


def labels_digest(folder: str | Path) -> str:
    """The SHA-256 of a strings folder's ``labels.csv``, which the recipe records."""
    return hashlib.sha256((Path(folder) / STRING_LABELS).read_bytes()).hexdigest()
