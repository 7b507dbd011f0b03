"""Training settings as data: one frozen dataclass that describes every setting once (type,
default, help, valid values) and checks it whenever a config is made.

The ``digitrec train`` flags (``digitrec.cli.options``) and the ``--params`` file reader are
generated from these descriptions; the command line, ``--params`` files, the Python API,
``--resume`` (``run.json``) and ``digitrec tune`` all make their configs here, so all of them pass
through the same checks before anything is written. Imports no TensorFlow.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

from digitrec.data import DATASETS
from digitrec.errors import DigitrecError
from digitrec.files import read_json
from digitrec.settings import Setting, about, check_settings, flag, setting
from digitrec.training.models import FINETUNE_RECIPE, MODELS, model_spec

SCHEDULES = ("constant", "cosine", "onecycle")
# With --init: every layer; every layer but batch normalization, which keeps the statistics it
# learned (and runs as at inference); or only the last Dense layer.
TRAIN_LAYERS = ("all", "frozen-norm", "head")
PRECISIONS = ("float32", "bfloat16")
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's global seeds are 32-bit
# --augment s shifts and zooms by up to 10% × s (digitrec.training.augment); Keras's layers allow 100%.
MAX_AUGMENT = 10.0
PARAMS_SUFFIXES = (".json", ".yaml", ".yml")
# Real handwriting a run may add to MNIST (digitrec.realdigits): CVL's train part to learn from,
# its valid part to validate on every epoch.
REAL_SETS = ("cvl",)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; ``run.json`` stores it whole. Made only valid."""

    model: str = setting("lenet5", "registered model, listed below", registry=MODELS)
    dataset: str = setting("mnist", "dataset name", registry=DATASETS)
    epochs: int = setting(10, "passes over the training split", at_least=1)
    batch_size: int = setting(128, "images per training step", at_least=1)
    learning_rate: float = setting(1e-3, "Adam's (peak) learning rate", above=0)
    seed: int = setting(0, "seed of everything random in the run", at_least=0, at_most=MAX_SEED)
    val_size: int = setting(
        5000,
        "training images held out (the last ones) for validation; 0 = a final fit on all",
        at_least=0,
        metavar="N",
    )
    label_smoothing: float = setting(0.0, "label smoothing of the loss", at_least=0, below=1)
    schedule: str = setting("constant", "learning-rate schedule", choices=SCHEDULES)
    warmup: float = setting(
        0.25, "fraction of the steps spent warming up (onecycle)", at_least=0, at_most=1
    )
    augment: float = setting(
        0.0,
        "strength of random rotation/shift/zoom while training; 0 = off",
        at_least=0,
        at_most=MAX_AUGMENT,
        metavar="STRENGTH",
    )
    elastic: float = setting(
        0.0,
        "strength of elastic distortion while training; 0 = off",
        at_least=0,
        metavar="STRENGTH",
    )
    user_style: float = setting(
        0.0,
        "fraction of the training split replaced by renders as users' images (a seeded fixed "
        "mix; the validation split is never rendered); 0 = off",
        at_least=0,
        at_most=1,
        metavar="FRACTION",
    )
    ema: float = setting(
        0.0,
        "momentum of an exponential moving average of the weights; 0 = off",
        at_least=0,
        below=1,
        metavar="MOMENTUM",
    )
    ensemble: int = setting(
        1, "members trained with seeds SEED, SEED+1, ..., saved as one model", at_least=1
    )
    member_args: list[dict[str, Any]] = field(
        default_factory=list,
        metadata=about(
            "model_args of the ensemble's members in turn (JSON list); [] = alike", metavar="JSON"
        ),
    )
    tta: bool = setting(False, "save the model averaging its predictions over small shifts")
    steps_per_execution: int = setting(
        32, "batches per TensorFlow call (less Python overhead, same maths)", at_least=1
    )
    precision: str = setting(
        "float32",
        "arithmetic of training: float32, or bfloat16 mixed precision (float32 weights; the "
        "saved model computes in float32)",
        choices=PRECISIONS,
    )
    model_args: dict[str, Any] = field(
        default_factory=dict,
        metadata=about("keyword arguments of the model's builder (JSON object)", metavar="JSON"),
    )
    init: str = setting(
        "",
        "start from trained weights: 'default' (the shipped model), a run directory or a .keras "
        "file; the architecture is the loaded model's (no --model); '' = from scratch",
        metavar="SOURCE",
    )
    images: list[str] = field(
        default_factory=list,
        metadata=about(
            "folder of your own images, a subfolder per digit, to train on (repeatable)",
            metavar="DIR",
        ),
    )
    images_val: float = setting(
        0.2,
        "fraction of the --images held out for validation (stratified by class, seeded)",
        above=0,
        below=1,
        metavar="FRACTION",
    )
    mix_mnist: float = setting(
        0.5,
        "with --images: fraction of every batch that is MNIST training images (0 = none)",
        at_least=0,
        below=1,
        metavar="FRACTION",
    )
    real: list[str] = field(
        default_factory=list,
        metadata=about(
            "real handwriting added to the training split: cvl (CVL's train part; its valid part "
            "is measured every epoch beside the validation split); found through "
            "DIGITREC_REAL_DIR (repeatable)",
            choices=REAL_SETS,
            metavar="SET",
        ),
    )
    real_repeat: int = setting(
        1,
        "with --real: times each real training image is in an epoch (oversampling)",
        at_least=1,
        metavar="N",
    )
    train_layers: str = setting(
        "all",
        "with --init: the layers that train (frozen-norm = all but batch normalization, "
        "head = the last Dense layer)",
        choices=TRAIN_LAYERS,
    )
    keep_init: float = setting(
        0.0,
        "with --init: share of the starting model in the result, whose weights are averaged "
        "with the trained ones (weight-space ensembling, WiSE-FT; 0 = the trained weights)",
        at_least=0,
        below=1,
        metavar="FRACTION",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        check_finetuning(self)
        arguments = builder_arguments(self.model)
        check_builder_arguments("model_args", self.model_args, self.model, arguments)
        for i, args in enumerate(self.member_args):
            check_builder_arguments(f"member_args[{i}]", args, self.model, arguments)
        if self.seed + self.ensemble - 1 > MAX_SEED:
            raise DigitrecError(
                f"the ensemble's last seed, seed + ensemble - 1, must be <= {MAX_SEED}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise DigitrecError(f"training settings must be a mapping, got {data!r}")
        unknown = sorted(set(data) - set(setting_types()))
        if unknown:
            raise DigitrecError(
                f"unknown training settings: {', '.join(unknown)}; "
                f"known: {', '.join(setting_types())}"
            )
        return cls(**data)

    def updated(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with the given settings replaced (``None`` values are ignored)."""
        merged = self.to_dict()
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "model_args" and isinstance(value, dict):
                merged["model_args"] = {**merged["model_args"], **value}
            else:
                merged[key] = value
        return TrainConfig.from_dict(merged)


def resolve_config(model: str | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the recipe, then the caller's settings (``None`` means unset).

    The recipe is the model's (``lenet5`` unless named), or with ``init`` the fine-tuning recipe
    (``FINETUNE_RECIPE``): the architecture is then the initial model's, so naming one is an error.
    """
    if overrides.get("init"):
        if model is not None:
            raise DigitrecError(
                f"{flag('model')} and {flag('init')} exclude each other: fine-tuning keeps the "
                f"architecture of the initial model ({overrides['init']})"
            )
        recipe = {**FINETUNE_RECIPE, "init": overrides["init"]}  # keep_init needs init
        return TrainConfig().updated(recipe).updated(overrides)
    model = model or "lenet5"
    spec = model_spec(model)
    return TrainConfig(model=model).updated(spec.recipe).updated(overrides)


def check_finetuning(config: TrainConfig) -> None:
    """The combination rules of ``init``, ``images`` and ``real``: an initial model brings its own
    architecture (no builder arguments, no ensemble); only a Keras model has weights to train;
    ``real_repeat`` repeats the ``real`` sets."""
    if config.init:
        if Path(config.init).suffix == ".onnx":
            raise DigitrecError(
                f"init ({flag('init')}) {config.init}: an exported ONNX model cannot be "
                "trained on; give its run directory or .keras file, or 'default'"
            )
        clashes = [
            flag(name)
            for name, value in (
                ("model_args", config.model_args),
                ("member_args", config.member_args),
                ("ensemble", config.ensemble > 1),
            )
            if value
        ]
        if clashes:
            raise DigitrecError(
                f"{flag('init')} starts from a trained model, whose architecture is fixed: "
                f"leave out {', '.join(clashes)}"
            )
    elif config.train_layers != "all":
        raise DigitrecError(
            f"train_layers ({flag('train_layers')}) {config.train_layers!r} needs {flag('init')}: "
            "a model trained from scratch trains every layer"
        )
    elif config.keep_init:
        raise DigitrecError(
            f"keep_init ({flag('keep_init')}) {config.keep_init} needs {flag('init')}: "
            "there is no starting model to keep"
        )
    if config.real_repeat != 1 and not config.real:
        raise DigitrecError(
            f"real_repeat ({flag('real_repeat')}) {config.real_repeat} needs {flag('real')}: "
            "there are no real images to repeat"
        )
    if config.images and config.ensemble > 1:
        raise DigitrecError(f"{flag('images')} trains a single model: leave out {flag('ensemble')}")


@cache
def setting_types() -> dict[str, Any]:
    """Each setting's type (``int``, ``float``, ``str``, ``bool``, ``dict[...]``, ``list[...]``)."""
    return get_type_hints(TrainConfig)


def description(name: str) -> Setting:
    return TrainConfig.__dataclass_fields__[name].metadata["setting"]


def builder_arguments(model: str) -> tuple[str, ...] | None:
    """The keyword arguments a model's builder takes (``None``: any, it has ``**kwargs``)."""
    parameters = inspect.signature(model_spec(model).build).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.name != "num_classes")


def check_builder_arguments(
    name: str, args: dict[str, Any], model: str, known: tuple[str, ...] | None
) -> None:
    unknown = [
        key for key in args if not isinstance(key, str) or (known is not None and key not in known)
    ]
    if unknown:
        takes = "any name" if known is None else ", ".join(known) or "none"
        raise DigitrecError(
            f"{name} ({flag(name.partition('[')[0])}): model {model!r} takes no argument "
            f"{', '.join(map(repr, unknown))}; its arguments: {takes}"
        )


def check_split(config: TrainConfig, train_images: int) -> None:
    """The check that needs the data: the validation split must leave images to train on."""
    if config.val_size >= train_images:
        raise DigitrecError(
            f"val_size ({flag('val_size')}) must be below the {train_images} training images "
            f"of {config.dataset}, got {config.val_size}"
        )


def recorded_config(run_dir: Path) -> TrainConfig:
    """The settings in a run's ``run.json``, checked as any others."""
    try:
        return TrainConfig.from_dict(read_json(run_dir / "run.json")["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DigitrecError(f"cannot read the settings in {run_dir / 'run.json'}: {exc}") from None


def resumable_config(run_dir: Path) -> TrainConfig:
    """The settings of a stopped run to continue; a ``DigitrecError`` for a folder that holds no
    run or a finished one."""
    if not (run_dir / "run.json").exists():
        raise DigitrecError(f"{run_dir} is not a run directory (no run.json)")
    if (run_dir / "metrics.json").exists():
        raise DigitrecError(f"{run_dir} is already complete")
    return recorded_config(run_dir)


def read_settings(path: Path) -> dict[str, Any]:
    """The settings in a ``--params`` file: a JSON or YAML mapping (by suffix) of setting names.

    A number written as text (YAML reads ``1e-3`` as a string) is read as on the command line.
    """
    import yaml

    path = Path(path)
    if path.suffix.lower() not in PARAMS_SUFFIXES:
        raise DigitrecError(f"--params {path}: unknown file type; use {', '.join(PARAMS_SUFFIXES)}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise DigitrecError(f"cannot read --params {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DigitrecError(f"cannot read --params {path}: not text ({exc.reason})") from None
    is_json = path.suffix.lower() == ".json"
    try:
        content = json.loads(text) if is_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if is_json else "YAML"
        raise DigitrecError(f"--params {path} is not valid {kind}: {exc}") from None
    if not isinstance(content, dict):
        found = "nothing" if content is None else f"a {type(content).__name__}"
        raise DigitrecError(
            f"--params {path} must hold a mapping of setting names to values, not {found}"
        )
    return {key: _number_from_text(key, value, path) for key, value in content.items()}


def _number_from_text(key: str, value: Any, path: Path) -> Any:
    kind = setting_types().get(key)
    if kind not in (int, float) or not isinstance(value, str):
        return value
    try:
        return kind(value)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise DigitrecError(f"--params {path}: {key} must be {noun}, not {value!r}") from None
