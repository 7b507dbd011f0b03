"""What a search shows: progress while it runs, then a leaderboard, best settings and figures."""

from __future__ import annotations

import io
import sys
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from digitrec.files import atomic_path, check_only_ours, write_json
from digitrec.quiet import bar_shown
from digitrec.tune.settings import TuneResult, TuneSettings
from digitrec.tune.study import finished_trials

# What a search writes into its folder: the mark that the folder is a study's, the SQLite study
# (with its journals), the outputs, and the run directories of --retrain.
STUDY_MARK = "digitrec-study.json"
STUDY_DB = "study.db"
FIGURES = ("optimization_history.png", "param_importances.png", "intermediate_values.png")
STUDY_FILES = {
    STUDY_MARK,
    *(STUDY_DB + ending for ending in ("", "-journal", "-wal", "-shm")),
    "best_params.json",
    "leaderboard.txt",
    *FIGURES,
}
RETRAIN_PREFIX = "retrain-trial"
LEADERBOARD_WIDTH = 100  # columns
# Optuna's parameter importances (fANOVA) from fewer complete trials than this say nothing.
IMPORTANCE_TRIALS = 10


class Progress:
    """A bar over the study's finished trials (on a terminal only, as every command's) and a
    line for each trial as it finishes.

    Called by Optuna after each trial when the search runs in this process, or polled while
    worker processes run.
    """

    def __init__(self, study: optuna.Study, settings: TuneSettings):
        from tqdm import tqdm

        self.enabled = settings.progress
        self.shown = {t.number for t in finished_trials(study)}
        self.bar = tqdm(
            total=settings.trials,
            initial=len(self.shown),
            unit="trial",
            disable=not (self.enabled and bar_shown()),
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


def describe(trial: FrozenTrial) -> str:
    state = "pruned" if trial.state == TrialState.PRUNED else "done"
    last = list(trial.intermediate_values.values())[-1:] or [float("nan")]
    value = trial.value if trial.value is not None else last[0]
    params = ", ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
    return f"trial {trial.number:3d} {state:6s} val_accuracy {value:.4f}  {params}"


def format_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def claim_folder(settings: TuneSettings) -> None:
    """Make the study's folder, or take an existing one that a search made (marked, or holding
    its SQLite study) and that holds nothing else; refuse any other before a trial is run, as
    the outputs would replace a user's files of their names."""
    folder = settings.folder
    marked = (folder / STUDY_MARK).is_file() or (folder / STUDY_DB).is_file()
    check_only_ours(
        folder,
        lambda entry: marked and _is_study_part(entry),
        "a digitrec study",
        "a search writes into a new or empty folder, or its own: choose another --out",
    )
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / STUDY_MARK).is_file():
        write_json(folder / STUDY_MARK, {"producer": "digitrec", "study": settings.study_name})


def _is_study_part(entry: Path) -> bool:
    """Whether a folder's ``entry`` is one of those a search writes (``STUDY_FILES``, a
    ``--retrain`` run, a temporary of an atomic write)."""
    name = entry.name
    if name.startswith(RETRAIN_PREFIX):
        return entry.is_dir()
    return name in STUDY_FILES or name[1:].partition(".tmp-")[0] in STUDY_FILES


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
    """The best complete trials as a text table of at most ``LEADERBOARD_WIDTH`` columns, with
    counts of the others: a column per parameter where they fit, else each trial's parameters
    as one wrapped column (never a value cut short)."""
    from rich.table import Table

    trials = study.get_trials(deepcopy=False)
    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -(t.value or 0)
    )
    names = sorted({k for t in complete for k in t.params})
    rows = []
    for rank, trial in enumerate(complete[:top], 1):
        values = [format_value(trial.params.get(name, "")) for name in names]
        seconds = str(trial.user_attrs.get("train_seconds", ""))
        rows.append(([str(rank), str(trial.number), f"{trial.value:.4f}", seconds], values))
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    title = f"study {study.study_name}"
    wide = Table("rank", "trial", "val acc", "seconds", *names, title=title)
    for cells, values in rows:
        wide.add_row(*cells, *values)
    text = rendered(wide, summary, width=None)
    if max(map(len, text.splitlines())) <= LEADERBOARD_WIDTH:
        return text
    narrow = Table("rank", "trial", "val acc", "seconds", "parameters", title=title)
    for cells, values in rows:
        narrow.add_row(*cells, ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True)))
    return rendered(narrow, summary, width=LEADERBOARD_WIDTH)


def rendered(table: Any, summary: str, width: int | None) -> str:
    """A rich table and a line under it as plain text, ``width`` columns wide at most (None:
    as wide as the table needs)."""
    from rich.console import Console

    console = Console(record=True, width=width or 10_000, file=io.StringIO())
    console.print(table)
    console.print(summary, overflow="fold")
    return "\n".join(line.rstrip() for line in console.export_text().rstrip().splitlines())


def write_figures(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimization history, parameter importances (from ``IMPORTANCE_TRIALS`` complete
    trials on; fewer are said not to be meaningful) and learning curves as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    target = "validation accuracy"
    plotters = (
        partial(plots.plot_optimization_history, target_name=target),
        partial(plots.plot_param_importances, target_name=target),
        plots.plot_intermediate_values,
    )
    figures = dict(zip(FIGURES, plotters, strict=True))
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete < IMPORTANCE_TRIALS:
        del figures["param_importances.png"]
        print(
            f"param_importances.png not drawn: parameter importances from {complete} complete "
            f"trials are not meaningful (it takes at least {IMPORTANCE_TRIALS})",
            file=sys.stderr,
        )
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
