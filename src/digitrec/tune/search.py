"""A search from start to finish: check the settings, run the missing trials, write the outputs."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from digitrec.data import load_dataset, subset_dataset
from digitrec.errors import DigitrecError
from digitrec.training.config import TrainConfig, resolve_config
from digitrec.tune.report import claim_folder, write_outputs
from digitrec.tune.settings import TUNE_DIR, TuneResult, TuneSettings
from digitrec.tune.space import nested, resolve_space
from digitrec.tune.study import finished_trials, open_study, search_record


def tune(settings: TuneSettings) -> TuneResult:
    """Run (or continue) a search until the study holds ``settings.trials`` finished trials.

    The settings, the search space and the study's folder are checked before TensorFlow is
    loaded. Writes the leaderboard, the best settings as a ``digitrec train --params`` file and
    the figures into the study's folder.
    """
    check_numbers(settings)
    check_study_name(settings.study)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # Progress says what happens
    space, fixed = resolve_space(settings.model, settings.space_file, settings.fixed)
    val_size = resolve_config(settings.model, **nested(fixed)).val_size
    if val_size <= 0:
        raise DigitrecError("a search needs a validation split (val_size > 0)")
    claim_folder(settings)
    study = open_study(settings, search_record(settings, space, fixed))
    data = load_dataset(settings.dataset, settings.data_dir, progress=settings.progress)
    from digitrec.tune.trials import run_trials  # TensorFlow loads here

    subset_dataset(data, settings.subset, val_size)  # fail here, not in every worker
    del data
    missing = settings.trials - len(finished_trials(study))
    if missing > 0:
        run_trials(settings, study, missing)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise DigitrecError(f"study {settings.study_name!r} has no complete trial yet")
    return write_outputs(study, settings.folder)


def check_numbers(settings: TuneSettings) -> None:
    """Refuse counts and limits that no search can have."""
    if settings.trials < 1 or settings.workers < 1:
        raise DigitrecError("--trials and --workers must be at least 1")
    if settings.seed < 0:
        raise DigitrecError("--seed must be at least 0")
    if settings.subset is not None and settings.subset < 1:
        raise DigitrecError(f"--subset must be at least 1, not {settings.subset}")
    if settings.timeout is not None and not settings.timeout > 0:
        raise DigitrecError(f"--timeout must be more than 0 seconds, not {settings.timeout}")


def check_study_name(name: str | None) -> None:
    """Refuse a study name that is not a plain name: it names the study's folder (by default
    ``runs/tune/NAME``), which must not lie elsewhere."""
    if name is None:
        return
    if name in ("", ".", "..") or {"/", "\\", "\0"} & set(name):  # every system's separators
        raise DigitrecError(
            f"--study {name!r}: give a plain name, without '/', '\\' or '..' (it names the "
            f"study's folder, {TUNE_DIR}/NAME by default)"
        )


def retrain(result: TuneResult, data_dir: str | Path | None = None, verbose: bool = True) -> Path:
    """Train the best settings on the full training set and evaluate the test set once.

    The run directory is named for the best trial, so a rerun resumes or reuses it.
    """
    from digitrec.training.train import resume, train

    model = result.study.best_trial.user_attrs["config"]["model"]
    config = TrainConfig.from_dict({**result.best_params, "model": model})
    run_dir = result.folder / f"retrain-trial{result.study.best_trial.number}"
    if (run_dir / "metrics.json").exists():
        return run_dir
    if (run_dir / "run.json").exists():
        return resume(run_dir, data_dir, verbose)
    return train(config, run_dir, data_dir, verbose)
