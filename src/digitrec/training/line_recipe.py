"""Making a line model by its recipe (``LineRecipe``), as ``digitrec train-lines`` does.

The steps, each into one run directory: train the line recognizer (``line_training``), then its
line filter (``line_filter``), export ``lines.onnx`` checked against Keras (``line_export``),
fit its rejection on validation pages (``page_rejection``), and write its model card. Each step
leaves its result there and is skipped when it is found, so a stopped run resumes at the first
step without one; the line training resumes from its last epoch, the filter from the crops it
made. ``Recognizer.load(lines=RUN)`` and ``digitrec predict --lines RUN`` read the result. A
fine-tuning run (``StringsRecipe``, ``line_strings``) takes the same path with its own steps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from digitrec.errors import DigitrecError
from digitrec.files import remove_stale_temporaries, write_json
from digitrec.read.line_reader import LineReader
from digitrec.read.loader import LINE_MODEL
from digitrec.training.line_export import card_figures, export_line_model, write_line_card
from digitrec.training.line_filter import (
    CROPS_FILE,
    FILTER_MODEL,
    FILTER_RECORD,
    train_line_filter,
)
from digitrec.training.line_settings import (
    CARD_FILE,
    RECIPE_FILE,
    LineRecipe,
    StringsRecipe,
    recipe_record,
    recorded_recipe,
)
from digitrec.training.line_strings import copy_filter, fine_tune_steps, init_files
from digitrec.training.line_training import train_line_model
from digitrec.training.page_rejection import store_rejection
from digitrec.training.rundir import STATE_FILE, check_new_run_dir, new_run_dir

# The files of a run directory that are written whole (files.atomic_path) at its top.
RUN_FILES = (RECIPE_FILE, "run.json", STATE_FILE, "model.keras", "metrics.json", CROPS_FILE)
RUN_FILES += (FILTER_MODEL, FILTER_RECORD, LINE_MODEL, CARD_FILE)

StepPrinter = Callable[[str], None]  # told each step, as a line (quiet.progress_printer)


def train_lines(
    recipe: LineRecipe | StringsRecipe,
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    progress: StepPrinter | None = None,
    background: bool = True,
) -> Path:
    """Make a line model by ``recipe`` in ``run_dir``, a new folder or one this recipe started
    (then resumed); return its ``lines.onnx``. A ``StringsRecipe`` fine-tunes a line model on
    your strings (``line_strings``). ``progress`` is told each step, and the training
    steps show their epochs when it is given. ``background`` makes the training lines in a
    worker process (a calling script needs an ``if __name__ == "__main__"`` guard)."""
    recipe.check()
    run_dir = Path(run_dir)
    if (run_dir / RECIPE_FILE).is_file():
        if recorded_recipe(run_dir) != recipe:
            raise DigitrecError(
                f"{run_dir} holds a run of another recipe ({RECIPE_FILE}); continue it with "
                "its own (resume) or choose another directory"
            )
        return _steps(recipe, run_dir, data_dir, progress, background)
    check_new_run_dir(run_dir)
    with new_run_dir(run_dir):
        write_json(run_dir / RECIPE_FILE, recipe_record(recipe))
        return _steps(recipe, run_dir, data_dir, progress, background)


def _steps(
    recipe: LineRecipe | StringsRecipe,
    run_dir: Path,
    data_dir: str | Path | None,
    progress: StepPrinter | None,
    background: bool,
) -> Path:
    if isinstance(recipe, StringsRecipe):
        return fine_tune_steps(recipe, run_dir, data_dir, progress, background, RUN_FILES)
    return _run_steps(recipe, run_dir, data_dir, progress, background)


def resume_lines(
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    progress: StepPrinter | None = None,
    background: bool = True,
) -> Path:
    """Continue a stopped ``train_lines`` run with its recorded recipe (a fine-tuning one's
    too); its ``lines.onnx``."""
    return train_lines(recorded_recipe(Path(run_dir)), run_dir, data_dir, progress, background)


def _run_steps(
    recipe: LineRecipe,
    run_dir: Path,
    data_dir: str | Path | None,
    progress: StepPrinter | None,
    background: bool,
) -> Path:
    """Every step whose result the run directory does not hold yet, in turn."""
    say = progress or (lambda message: None)
    verbose = progress is not None
    for name in RUN_FILES:  # what the writes of a stopped run left half done
        remove_stale_temporaries(run_dir / name)
    lines, line_filter = recipe.lines, recipe.filter
    if not (run_dir / "metrics.json").is_file():
        say(f"line model: {lines.epochs} epochs of {lines.steps_per_epoch} batches of new lines")
        train_line_model(lines, run_dir, data_dir, verbose=verbose, background=background)
    if lines.init and not (run_dir / FILTER_RECORD).is_file():
        say(f"line filter: the starting model's ({lines.init}), kept as it is")
        copy_filter(run_dir, *init_files(lines.init)[1:])
    if not (run_dir / FILTER_RECORD).is_file():
        pages = line_filter.pages_per_layout
        say(f"line filter: crops of {pages} pages of every layout, {line_filter.epochs} epochs")
        train_line_filter(run_dir, line_filter, data_dir, verbose)
    model = run_dir / LINE_MODEL
    if not model.is_file():
        say(f"export: {model}, checked against Keras")
        export_line_model(run_dir, model, data_dir, recipe=recipe)
    if "rejection_figures" not in LineReader.load(model).metadata:
        say(f"rejection: fitted on {recipe.rejection_pages} validation pages of every layout")
        store_rejection(model, recipe.rejection_pages, data_dir)
    card = run_dir / CARD_FILE
    if not card.is_file():
        pages = recipe.card_pages
        say(f"model card: {pages} validation pages of every layout read" if pages else "model card")
        write_line_card(model, card, card_figures(model, recipe.card_pages, data_dir))
    return model
