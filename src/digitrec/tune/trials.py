"""Running trials: one sampled configuration trained and scored, in this or worker processes."""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Callable

import keras
import optuna

from digitrec.data import Dataset, load_dataset, subset_dataset
from digitrec.errors import DigitrecError
from digitrec.training.config import resolve_config
from digitrec.training.models import build_model
from digitrec.training.train import fit, seed_everything
from digitrec.tune.report import Progress
from digitrec.tune.settings import TuneSettings
from digitrec.tune.space import Param, nested, resolve_space
from digitrec.tune.study import FINISHED, open_study, search_record, trial_seed


def objective(
    trial: optuna.Trial,
    settings: TuneSettings,
    space: dict[str, Param],
    fixed: dict,
    data: Dataset,
    worker: int,
) -> float:
    """Train one sampled configuration; its score is the final validation accuracy.

    The trial records its configuration, and which process on which machine ran it with which
    sampler seed, so a search over many machines can be traced afterwards.
    """
    from optuna_integration import KerasPruningCallback

    sampled = {name: param.suggest(trial, name) for name, param in space.items()}
    config = resolve_config(settings.model, **nested({**fixed, **sampled}))
    config = config.updated({"dataset": settings.dataset_name})
    trial.set_user_attr("config", config.to_dict())
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("sampler_seed", trial_seed(settings.seed, trial.number))
    keras.backend.clear_session()
    seed_everything(config.seed)
    model = build_model(config.model, len(data.class_names), **config.model_args)
    started = time.perf_counter()
    history = fit(
        model, config, data, callbacks=[KerasPruningCallback(trial, "val_accuracy")], verbose=False
    )
    trial.set_user_attr("train_seconds", round(time.perf_counter() - started, 2))
    return float(history.history["val_accuracy"][-1])


def run_search(
    settings: TuneSettings, worker: int, n_trials: int, callbacks: list[Callable] | None = None
) -> None:
    """Run up to ``n_trials`` trials of the study in this process, loading the data once."""
    space, fixed = resolve_space(settings.model, settings.space_file, settings.fixed)
    study = open_study(settings, search_record(settings, space, fixed))
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
        run_search(settings, worker, n_trials)
    except DigitrecError as exc:
        print(f"digitrec tune worker {worker}: error: {exc}", file=sys.stderr)
        sys.exit(2)


def run_trials(settings: TuneSettings, study: optuna.Study, missing: int) -> None:
    """Run the missing trials here (one worker) or in ``settings.workers`` processes."""
    progress = Progress(study, settings)
    try:
        if settings.workers == 1:
            run_search(settings, 0, missing, callbacks=[progress])
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
