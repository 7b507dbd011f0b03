"""Hyperparameter search with Optuna: a search space per model, pruned trials, a study in storage.

Every trial trains on the training split and is scored by its accuracy on the held-out validation
split; the test set is never looked at here. The study lives in an RDB storage (by default a
SQLite file in the study's folder), so a stopped search continues where it was when run again,
several processes can work on one study at once, and with a PostgreSQL URL so can several machines.

One module per job: ``settings`` (what defines a search), ``space`` (what is searched),
``storage`` and ``study`` (where trials live and how they are sampled), ``trials`` (training
them, in worker processes), ``report`` (progress and outputs) and ``search`` (all of it in turn).
Only ``trials`` imports TensorFlow, once a search's settings have been checked.
"""

from digitrec.data import subset_dataset
from digitrec.tune.search import retrain, tune
from digitrec.tune.settings import TUNE_DIR, TuneResult, TuneSettings
from digitrec.tune.space import (
    Param,
    builder_defaults,
    default_space,
    derived_space,
    nested,
    resolve_space,
)
from digitrec.tune.storage import driver_url, masked, open_storage
from digitrec.tune.study import (
    FINISHED,
    STARTUP_TRIALS,
    TrialSeededSampler,
    open_study,
    search_record,
)

__all__ = [
    "FINISHED",
    "STARTUP_TRIALS",
    "TUNE_DIR",
    "Param",
    "TrialSeededSampler",
    "TuneResult",
    "TuneSettings",
    "builder_defaults",
    "default_space",
    "derived_space",
    "driver_url",
    "masked",
    "nested",
    "open_storage",
    "open_study",
    "resolve_space",
    "retrain",
    "search_record",
    "subset_dataset",
    "tune",
]
