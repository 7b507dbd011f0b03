"""What defines a search, and what a finished one gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitrec.data import DatasetInfo
from digitrec.training.rundir import RUNS_DIR

if TYPE_CHECKING:
    import optuna

TUNE_DIR = RUNS_DIR / "tune"


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
