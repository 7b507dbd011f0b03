"""The study: created once for a search's settings, shared by every worker, sampled per trial.

Reproducibility: each trial's random draws are seeded by the search's seed and the trial's
number, and the storage hands every number out once. So one worker on a fresh study with the
same seed draws the same trials again, given the same accuracies (TPE steers by them once
``STARTUP_TRIALS`` trials have finished), and no two processes draw alike, on one machine or
many. Several workers at once are not reproducible: their timing decides which trial each one
runs and what TPE has seen when it samples.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from digitrec.errors import DigitrecError
from digitrec.tune.settings import TuneSettings
from digitrec.tune.space import Param
from digitrec.tune.storage import masked, open_storage

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts toward the number of trials
STARTUP_TRIALS = 5  # random trials before TPE (and pruning) starts to steer


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number`` in a search seeded ``seed`` (well mixed, 32 bits)."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE whose random draws for each trial are seeded by the search's seed and the trial number.

    TPE keeps nothing between trials but its random state (it reads the finished trials from
    the storage), so a fresh TPE sampler per trial samples as one would, from its own seed.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self._tpe = self._sampler(0)

    def _sampler(self, number: int) -> optuna.samplers.TPESampler:
        seed = trial_seed(self.seed, number)
        return optuna.samplers.TPESampler(n_startup_trials=STARTUP_TRIALS, seed=seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe = self._sampler(trial.number)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._tpe.after_trial(study, trial, state, values)


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


def open_study(settings: TuneSettings, record: dict) -> optuna.Study:
    """Create or load the study, with a TPE sampler seeded per trial and a median pruner."""
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
    study.sampler = TrialSeededSampler(settings.seed)
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=1)
    return study


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)
