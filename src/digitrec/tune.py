"""Hyperparameter search with Optuna: a search space per model, pruned trials, a study in storage.

Every trial trains on the training split and is scored by its accuracy on the held-out validation
split; the test set is never looked at here. The study lives in an RDB storage (by default a
SQLite file in the study's folder), so a stopped search continues where it was when run again,
several processes can work on one study at once, and with a PostgreSQL URL so can several machines.
"""

from __future__ import annotations

import inspect
import io
import json
import multiprocessing
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import keras
import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from digitrec.config import TrainConfig
from digitrec.data import Dataset, DatasetInfo, load_dataset
from digitrec.errors import DigitrecError
from digitrec.files import atomic_path, write_json
from digitrec.models import build_model, model_spec
from digitrec.train import (
    RUNS_DIR,
    SCHEDULES,
    fit,
    resolve_config,
    resume,
    seed_everything,
    train,
)

TUNE_DIR = RUNS_DIR / "tune"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts toward the number of trials
STARTUP_TRIALS = 5  # random trials before TPE (and pruning) starts to steer
STORAGE_ATTEMPTS = 4  # tries to open a storage that another process may be creating
HEARTBEAT_SECONDS = 30  # a trial silent for 3 heartbeats belongs to a dead worker; it is retried
NOT_SEARCHABLE = ("model", "dataset", "model_args", "member_args")


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


@dataclass
class TuneSettings:
    """Everything that defines a search; a study resumes only with the same model, dataset,
    subset, seed, space and fixed settings (see ``search_record``)."""

    model: str = "lenet5"
    trials: int = 20  # finished (complete or pruned) trials the study should hold
    dataset: str | DatasetInfo = "mnist"
    data_dir: str | Path | None = None
    timeout: float | None = None  # seconds, per worker
    storage: str | None = None  # RDB URL; default: SQLite in the study folder
    study: str | None = None  # default: "<model>-<dataset>"
    workers: int = 1
    space_file: Path | None = None
    subset: int | None = None  # train on the first N training images only (quick searches)
    fixed: dict[str, Any] = field(default_factory=dict)  # TrainConfig settings not searched
    seed: int = 0
    out: Path | None = None  # study folder; default: runs/tune/<study>
    progress: bool = True

    @property
    def dataset_name(self) -> str:
        return self.dataset.name if isinstance(self.dataset, DatasetInfo) else self.dataset

    @property
    def study_name(self) -> str:
        return self.study or f"{self.model}-{self.dataset_name}"

    @property
    def folder(self) -> Path:
        return Path(self.out) if self.out else TUNE_DIR / self.study_name

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.folder / 'study.db').resolve()}"


@dataclass
class TuneResult:
    """A finished search: the study, its folder and the best settings found."""

    study: optuna.Study
    folder: Path
    best_params: dict[str, Any]
    best_params_file: Path
    leaderboard: str


# --- the search space ---------------------------------------------------------------------------


def default_space(model: str) -> dict[str, Param]:
    """The settings searched for a model: optimizer, batch, epochs and the builder's own arguments.

    Ranges are centred on the model's recipe: learning rate from a tenth to ten times, epochs
    from half to one and a half times, integer widths from half to twice; dropout in [0, 0.6].
    Keys are ``TrainConfig`` fields, or ``model_args.NAME`` for the builder's keyword arguments.
    """
    recipe = resolve_config(model)
    rate = recipe.learning_rate
    space = {
        "learning_rate": Param("float", rate / 10, rate * 10, log=True),
        "schedule": Param("categorical", choices=SCHEDULES),
        "batch_size": Param("categorical", choices=(32, 64, 128, 256)),
        "label_smoothing": Param("float", 0.0, 0.2),
        "epochs": Param("int", max(1, recipe.epochs // 2), max(2, recipe.epochs * 3 // 2)),
    }
    if "augment" in train_fields():
        space["augment"] = Param("float", 0.0, 1.0)
    hints = get_type_hints(model_spec(model).build)
    for name, default in builder_defaults(model).items():
        default = recipe.model_args.get(name, default)
        if get_origin(hints.get(name)) is Literal:  # the builder names the only values that fit
            space[f"model_args.{name}"] = Param("categorical", choices=get_args(hints[name]))
        elif isinstance(default, float) and "dropout" in name:
            space[f"model_args.{name}"] = Param("float", 0.0, 0.6)
        elif isinstance(default, int) and not isinstance(default, bool) and default >= 2:
            space[f"model_args.{name}"] = Param("int", max(1, default // 2), default * 2, log=True)
    return space


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
    builder = builder_defaults(model)
    open_builder = any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        for p in inspect.signature(model_spec(model).build).parameters.values()
    )
    for key, entry in {**entries, **{k: None for k in fixed}}.items():
        section, _, arg = key.partition(".")
        known = (
            (open_builder or arg in builder)
            if section == "model_args" and arg
            else key in train_fields() and key not in NOT_SEARCHABLE
        )
        if not known:
            raise DigitrecError(
                f"search space: {key!r} is not a training setting or an argument of {model!r}; "
                f"known: {', '.join(sorted(default_space(model)))}"
            )
        space.pop(key, None)
        if isinstance(entry, dict):
            try:
                space[key] = Param.from_dict(entry)
            except ValueError as exc:
                raise DigitrecError(f"search space {space_file}: {key}: {exc}") from None
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


# --- storage and study --------------------------------------------------------------------------


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Open (creating if needed) the RDB storage at ``url``, or fail with a clear message.

    SQLite gets a long lock timeout so that several local workers can share the file; every
    worker records a heartbeat, and a trial whose worker died is failed and queued again once.
    Processes that create the same new storage at once race on its tables; the loser tries again.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError

    attempt = 1
    while True:
        try:
            return _rdb_storage(url)
        except (IntegrityError, OperationalError) as exc:
            if attempt == STORAGE_ATTEMPTS:
                raise _storage_error(url, exc) from None
        except Exception as exc:  # drivers and servers each fail in their own way
            raise _storage_error(url, exc) from None
        time.sleep(0.5 * attempt)
        attempt += 1


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite:") else {}
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=3 * HEARTBEAT_SECONDS,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(1),
        )


def _storage_error(url: str, exc: Exception) -> DigitrecError:
    return DigitrecError(
        f"cannot open study storage {masked(url)}: {type(exc).__name__}: {exc}\n"
        "expected an RDB URL such as sqlite:////abs/path/study.db or "
        "postgresql://USER:PASSWORD@HOST/DB (PostgreSQL needs `pip install psycopg2-binary`)"
    )


def masked(url: str) -> str:
    """The URL with any password hidden, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


def search_record(settings: TuneSettings, space: dict[str, Param], fixed: dict) -> dict:
    """What a study was created for; a rerun with different values would mix two searches."""
    return json.loads(
        json.dumps(
            {
                "model": settings.model,
                "dataset": settings.dataset_name,
                "subset": settings.subset,
                "seed": settings.seed,
                "space": {k: asdict(p) for k, p in sorted(space.items())},
                "fixed": fixed,
            }
        )
    )


def open_study(settings: TuneSettings, record: dict, worker: int = 0) -> optuna.Study:
    """Create or load the study, with a TPE sampler seeded per worker and a median pruner."""
    storage = open_storage(settings.storage_url)
    study = optuna.create_study(
        storage=storage,
        study_name=settings.study_name,
        direction="maximize",
        load_if_exists=True,
    )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise DigitrecError(f"study {settings.study_name!r} does not maximize an accuracy")
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", record)
    elif stored != record:
        changed = sorted(k for k in record if stored.get(k) != record[k])
        raise DigitrecError(
            f"study {settings.study_name!r} in {masked(settings.storage_url)} was created with "
            f"other settings ({', '.join(changed)} differ); use them again or name a new --study"
        )
    # Seeded by worker and by the trials already there, so a rerun does not replay old samples.
    seed = settings.seed + 1000 * worker + len(study.trials)
    study.sampler = optuna.samplers.TPESampler(n_startup_trials=STARTUP_TRIALS, seed=seed)
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=1)
    return study


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


# --- trials -------------------------------------------------------------------------------------


def subset_dataset(data: Dataset, subset: int | None, val_size: int) -> Dataset:
    """Keep the first ``subset`` training images and the validation split (the last ``val_size``)."""
    if subset is None:
        return data
    available = len(data.train_images) - val_size
    if not 0 < subset <= available:
        raise DigitrecError(f"--subset must be in [1, {available}] (images before validation)")
    keep = np.r_[0:subset, available : len(data.train_images)]
    return Dataset(
        data.info, data.train_images[keep], data.train_labels[keep], data.test_images,
        data.test_labels, data.files,
    )  # fmt: skip


def objective(
    trial: optuna.Trial,
    settings: TuneSettings,
    space: dict[str, Param],
    fixed: dict,
    data: Dataset,
    worker: int,
) -> float:
    """Train one sampled configuration; its score is the final validation accuracy."""
    from optuna_integration import KerasPruningCallback

    sampled = {name: param.suggest(trial, name) for name, param in space.items()}
    config = resolve_config(settings.model, **nested({**fixed, **sampled}))
    config = config.updated({"dataset": settings.dataset_name})
    trial.set_user_attr("config", config.to_dict())
    trial.set_user_attr("worker", worker)
    keras.backend.clear_session()
    seed_everything(config.seed)
    model = build_model(config.model, len(data.class_names), **config.model_args)
    started = time.perf_counter()
    history = fit(
        model, config, data, callbacks=[KerasPruningCallback(trial, "val_accuracy")], verbose=False
    )
    trial.set_user_attr("train_seconds", round(time.perf_counter() - started, 2))
    return float(history.history["val_accuracy"][-1])


def search(
    settings: TuneSettings, worker: int, n_trials: int, callbacks: list[Callable] | None = None
) -> None:
    """Run up to ``n_trials`` trials of the study in this process, loading the data once."""
    space, fixed = resolve_space(settings.model, settings.space_file, settings.fixed)
    study = open_study(settings, search_record(settings, space, fixed), worker)
    val_size = resolve_config(settings.model, **nested(fixed)).val_size
    data = load_dataset(settings.dataset, settings.data_dir, progress=False)
    data = subset_dataset(data, settings.subset, val_size)
    study.optimize(
        lambda trial: objective(trial, settings, space, fixed, data, worker),
        n_trials=n_trials,
        timeout=settings.timeout,
        catch=(ValueError, DigitrecError),  # e.g. a width too small for the input: next trial
        callbacks=[optuna.study.MaxTrialsCallback(settings.trials, states=FINISHED)]
        + (callbacks or []),
        gc_after_trial=True,
    )


def worker_process(settings: TuneSettings, worker: int, n_trials: int) -> None:
    """The body of one of several worker processes: a share of the CPU, errors as messages."""
    import tensorflow as tf

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    try:
        search(settings, worker, n_trials)
    except DigitrecError as exc:
        print(f"digitrec tune worker {worker}: error: {exc}", file=sys.stderr)
        sys.exit(2)


class Progress:
    """A bar over the study's finished trials and a line for each trial as it finishes.

    Called by Optuna after each trial when the search runs in this process, or polled while
    worker processes run.
    """

    def __init__(self, study: optuna.Study, settings: TuneSettings):
        from tqdm import tqdm

        self.enabled = settings.progress
        self.shown = {t.number for t in finished_trials(study)}
        self.bar = tqdm(
            total=settings.trials, initial=len(self.shown), unit="trial", disable=not self.enabled
        )

    def __call__(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None:
        for finished in finished_trials(study):
            if finished.number not in self.shown:
                self.shown.add(finished.number)
                self.bar.update()
                if self.enabled:
                    self.bar.write(describe(finished))

    def close(self) -> None:
        self.bar.close()


def run_trials(settings: TuneSettings, study: optuna.Study, missing: int) -> None:
    """Run the missing trials here (one worker) or in ``settings.workers`` processes."""
    progress = Progress(study, settings)
    try:
        if settings.workers == 1:
            search(settings, 0, missing, callbacks=[progress])
        else:
            run_processes(settings, study, missing, progress)
    finally:
        progress.close()


def run_processes(
    settings: TuneSettings, study: optuna.Study, missing: int, progress: Progress
) -> None:
    """Share the missing trials among worker processes and wait for them, polling progress."""
    workers = settings.workers
    shares = [missing // workers + (i < missing % workers) for i in range(workers)]
    context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    processes = [
        context.Process(target=worker_process, args=(settings, i, n), name=f"digitrec-tune-{i}")
        for i, n in enumerate(shares)
        if n
    ]
    try:
        for process in processes:
            process.start()
        while any(p.is_alive() for p in processes):
            time.sleep(2)
            progress(study)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    failed = [p.name for p in processes if p.exitcode]
    if failed:
        raise DigitrecError(f"search processes stopped with an error: {', '.join(failed)}")


def describe(trial: FrozenTrial) -> str:
    state = "pruned" if trial.state == TrialState.PRUNED else "done"
    last = list(trial.intermediate_values.values())[-1:] or [float("nan")]
    value = trial.value if trial.value is not None else last[0]
    params = ", ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
    return f"trial {trial.number:3d} {state:6s} val_accuracy {value:.4f}  {params}"


def format_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --- the search and its outputs -----------------------------------------------------------------


def tune(settings: TuneSettings) -> TuneResult:
    """Run (or continue) a search until the study holds ``settings.trials`` finished trials.

    Writes the leaderboard, the best settings as a ``digitrec train --params`` file and the
    figures into the study's folder.
    """
    if settings.trials < 1 or settings.workers < 1:
        raise DigitrecError("--trials and --workers must be at least 1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # Progress says what happens
    space, fixed = resolve_space(settings.model, settings.space_file, settings.fixed)
    val_size = resolve_config(settings.model, **nested(fixed)).val_size
    if val_size <= 0:
        raise DigitrecError("a search needs a validation split (val_size > 0)")
    if settings.storage is None:
        settings.folder.mkdir(parents=True, exist_ok=True)
    study = open_study(settings, search_record(settings, space, fixed))
    data = load_dataset(settings.dataset, settings.data_dir, progress=settings.progress)
    subset_dataset(data, settings.subset, val_size)  # fail here, not in every worker
    del data
    missing = settings.trials - len(finished_trials(study))
    if missing > 0:
        run_trials(settings, study, missing)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise DigitrecError(f"study {settings.study_name!r} has no complete trial yet")
    return write_outputs(study, settings.folder)


def write_outputs(study: optuna.Study, folder: Path) -> TuneResult:
    """Leaderboard, best parameters and figures, each written atomically into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    best = study.best_trial
    params = {k: v for k, v in best.user_attrs["config"].items() if k != "model"}
    params_file = folder / "best_params.json"
    write_json(params_file, params)
    board = leaderboard(study)
    with atomic_path(folder / "leaderboard.txt") as tmp:
        tmp.write_text(board + "\n")
    write_figures(study, folder)
    return TuneResult(study, folder, params, params_file, board)


def leaderboard(study: optuna.Study, top: int = 10) -> str:
    """The best complete trials as a text table, with counts of the others."""
    from rich.console import Console
    from rich.table import Table

    trials = study.get_trials(deepcopy=False)
    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -(t.value or 0)
    )
    names = sorted({k for t in complete for k in t.params})
    table = Table("rank", "trial", "val acc", "seconds", *names, title=f"study {study.study_name}")
    for rank, trial in enumerate(complete[:top], 1):
        cells = [format_value(trial.params.get(name, "")) for name in names]
        seconds = trial.user_attrs.get("train_seconds", "")
        table.add_row(str(rank), str(trial.number), f"{trial.value:.4f}", str(seconds), *cells)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(table)
    console.print(", ".join(f"{n} {state}" for state, n in counts.items() if n))
    return console.export_text().rstrip()


def write_figures(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimization history, parameter importances and learning curves as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    target = "validation accuracy"
    figures = {
        "optimization_history.png": partial(plots.plot_optimization_history, target_name=target),
        "param_importances.png": partial(plots.plot_param_importances, target_name=target),
        "intermediate_values.png": plots.plot_intermediate_values,
    }
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, plot in figures.items():
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as exc:  # e.g. too few trials for importances
                print(f"skipped {name}: {exc}", file=sys.stderr)
                continue
            figure = axes.figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            with atomic_path(folder / name, suffix=".png") as tmp:
                figure.savefig(tmp, dpi=100)
            plt.close(figure)
            written.append(folder / name)
    return written


def retrain(result: TuneResult, data_dir: str | Path | None = None, verbose: bool = True) -> Path:
    """Train the best settings on the full training set and evaluate the test set once.

    The run directory is named for the best trial, so a rerun resumes or reuses it.
    """
    model = result.study.best_trial.user_attrs["config"]["model"]
    config = TrainConfig.from_dict({**result.best_params, "model": model})
    run_dir = result.folder / f"retrain-trial{result.study.best_trial.number}"
    if (run_dir / "metrics.json").exists():
        return run_dir
    if (run_dir / "run.json").exists():
        return resume(run_dir, data_dir, verbose)
    return train(config, run_dir, data_dir, verbose)
