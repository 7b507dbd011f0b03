"""``digitrec train-lines``: the shipped line model's recipe as settings, its flags, the checks
made before TensorFlow loads, and a run that resumes at the step it had not finished."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fresh_python import run_importing_none_of

from digitrec.cli import build_parser, main
from digitrec.cli.train_lines import recipe_from
from digitrec.training.line_settings import (
    CARD_FILE,
    RECIPE_FILE,
    FilterSettings,
    LineRecipe,
    LineTrainSettings,
    quick_recipe,
    recipe_flags,
    with_values,
)

SHIPPED_CARD = Path(__file__).parent.parent / "src" / "digitrec" / "assets" / "lines.card.md"


def test_the_recipes_defaults_are_those_the_shipped_line_model_records():
    from digitrec.read.loader import load_model
    from digitrec.synth.pages import LAYOUTS

    meta = load_model("default", lines=True).metadata
    assert LineTrainSettings(**meta["training_settings"]) == LineTrainSettings()
    assert FilterSettings(**meta["line_filter"]["settings"]) == FilterSettings()
    pages = meta["rejection_figures"]["validation_pages"]
    assert pages == LineRecipe().rejection_pages * len(LAYOUTS)


def test_the_shipped_model_cards_reproduce_is_the_command_with_its_defaults():
    card = SHIPPED_CARD.read_text()
    assert "```sh\ndigitrec train-lines --out runs/lines\n```" in card
    assert "```python" not in card  # no recipe as a snippet of code


@pytest.mark.parametrize(
    "recipe",
    [
        LineRecipe(),
        quick_recipe(),
        with_values(quick_recipe(), {"lines.epochs": 3, "filter.drawn": 20}),
        with_values(
            LineRecipe(),
            {
                "lines.head": "conv",
                "lines.learning_rate": 1e-3,
                "lines.finest_pen": -0.9,
                "filter.elastic": 2.0,
                "filter.seed": 7,
                "card_pages": 0,
            },
        ),
    ],
)
def test_the_flags_of_a_recipe_give_that_recipe(recipe):
    flags = shlex.split(" ".join(recipe_flags(recipe)))
    args = build_parser().parse_args(["train-lines", "--out", "run", *flags])
    assert recipe_from(args) == recipe


def test_a_recipe_is_said_with_the_fewest_flags():
    assert recipe_flags(LineRecipe()) == []
    assert recipe_flags(quick_recipe()) == ["--quick"]
    assert recipe_flags(with_values(quick_recipe(), {"lines.seed": 3})) == ["--quick", "--seed 3"]
    assert recipe_flags(with_values(LineRecipe(), {"lines.epochs": 50})) == ["--epochs 50"]


def test_bad_arguments_are_refused_before_tensorflow_loads(tmp_path):
    started = tmp_path / "started"
    started.mkdir()
    (started / RECIPE_FILE).write_text(json.dumps(asdict(quick_recipe())))
    complete = tmp_path / "complete"
    complete.mkdir()
    (complete / RECIPE_FILE).write_text(json.dumps(asdict(quick_recipe())))
    (complete / CARD_FILE).write_text("# card\n")
    classifier_run = tmp_path / "classifier"
    classifier_run.mkdir()
    (classifier_run / "run.json").write_text("{}")
    new = str(tmp_path / "new")
    cases = {
        "--epochs 0": (
            ["--out", new, "--epochs", "0"],
            "line model: epochs must be at least 1, not 0",
        ),
        "--filter-drawn 0": (
            ["--out", new, "--filter-drawn", "0"],
            "line filter: drawn must be at least 1, not 0",
        ),
        "--rejection-pages 0": (["--out", new, "--rejection-pages", "0"], "rejection_pages"),
        "--finest-pen": (["--out", new, "--finest-pen", "-2"], "finest_pen must be in"),
        "--dataset": (["--out", new, "--dataset", "nope"], "unknown dataset 'nope'"),
        "--head": (["--out", new, "--head", "rnn"], "invalid choice: 'rnn'"),
        "--epochs text": (["--out", new, "--epochs", "many"], "invalid int value: 'many'"),
        "no folder": (["--quick"], "one of the arguments --out --resume is required"),
        "both": (["--out", new, "--resume", str(started)], "not allowed with argument"),
        "a run": (["--out", str(classifier_run)], "already holds a run"),
        "no run": (["--resume", str(tmp_path)], "not a train-lines run (no recipe.json)"),
        "complete": (["--resume", str(complete)], "already complete"),
        "resume with flags": (
            ["--resume", str(started), "--epochs", "3", "--quick"],
            "leave out --epochs, --quick",
        ),
    }
    results = cli_results_without_tensorflow("train-lines", {k: v[0] for k, v in cases.items()})
    for name, (_, message) in cases.items():
        status, stderr = results[name]
        assert status == 2 and message in stderr, (name, stderr)
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in started.iterdir()) == [RECIPE_FILE]


def cli_results_without_tensorflow(command: str, cases: dict[str, list[str]]) -> dict:
    """Each case's arguments given to ``digitrec COMMAND`` in one fresh Python that must not
    import TensorFlow: by case, [exit status, stderr]."""
    code = (
        "import contextlib, io, json\n"
        "from digitrec.cli import main\n"
        "results = {}\n"
        f"for name, argv in {json.dumps(cases)}.items():\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        try:\n"
        f"            status = main([{command!r}, *argv])\n"
        "        except SystemExit as exit:\n"
        "            status = exit.code\n"
        "    results[name] = [status, err.getvalue()]\n"
        "print(json.dumps(results))\n"
    )
    result = run_importing_none_of(("tensorflow", "keras"), code)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


# --- the steps, resumed ------------------------------------------------------------------------


STEPS = {  # the steps of train_lines: the function of each, and what it leaves (by its arguments)
    "line_model": ("train_line_model", lambda args: _touch(args[1], "state.json", "metrics.json")),
    "line_filter": ("train_line_filter", lambda args: _touch(args[0], "filter.json")),
    "export": ("export_line_model", lambda args: args[1].write_text("{}")),
    "rejection": ("store_rejection", lambda args: args[0].write_text('{"rejection_figures": 1}')),
    "card": ("write_line_card", lambda args: args[1].write_text("# card\n")),
}


class Steps:
    """Stand-ins for the steps of ``train_lines`` (``STEPS``), which record that they ran;
    ``stop`` names a step that is interrupted instead."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop: str = ""):
        from digitrec.training import line_recipe

        self.done: list[str] = []
        for name, (function, leaves) in STEPS.items():
            monkeypatch.setattr(line_recipe, function, self.step(name, leaves, name == stop))
        monkeypatch.setattr(line_recipe, "card_figures", lambda *args: {})
        monkeypatch.setattr(line_recipe.LineReader, "load", read_metadata)

    def step(self, name: str, leaves, stopped: bool):
        def run(*args, **kwargs):
            if stopped:
                raise KeyboardInterrupt
            self.done.append(name)
            leaves(args)

        return run


def read_metadata(model: Path) -> SimpleNamespace:
    """A stand-in of the exported line model: the metadata the stand-in steps wrote."""
    return SimpleNamespace(metadata=json.loads(Path(model).read_text()))


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (Path(folder) / name).write_text("{}")


def test_a_stopped_run_resumes_at_the_first_step_it_had_not_finished(tmp_path, monkeypatch):
    from digitrec.training.line_recipe import resume_lines, train_lines

    run = tmp_path / "run"
    first = Steps(monkeypatch, stop="export")
    with pytest.raises(KeyboardInterrupt):
        train_lines(quick_recipe(), run)
    assert first.done == ["line_model", "line_filter"]
    assert json.loads((run / RECIPE_FILE).read_text()) == asdict(quick_recipe())
    second = Steps(monkeypatch)
    assert resume_lines(run) == run / "lines.onnx"
    assert second.done == ["export", "rejection", "card"]


def test_a_run_stopped_in_its_rejection_fits_it_on_the_exported_model(tmp_path, monkeypatch):
    from digitrec.training.line_recipe import resume_lines, train_lines

    run = tmp_path / "run"
    Steps(monkeypatch, stop="rejection")
    with pytest.raises(KeyboardInterrupt):
        train_lines(quick_recipe(), run)
    half_written = run / ".lines.onnx.tmp-k3j2.onnx"  # a write its process never finished
    half_written.write_bytes(b"\x08\x07")
    os.utime(half_written, (1e9, 1e9))
    resumed = Steps(monkeypatch)
    resume_lines(run)
    assert resumed.done == ["rejection", "card"]
    assert not half_written.exists()


def test_a_run_stopped_before_its_first_epoch_leaves_nothing(tmp_path, monkeypatch):
    from digitrec.training.line_recipe import train_lines

    Steps(monkeypatch, stop="line_model")
    with pytest.raises(KeyboardInterrupt):
        train_lines(quick_recipe(), tmp_path / "runs" / "lines")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_of_another_recipe_is_refused(tmp_path, monkeypatch):
    from digitrec.errors import DigitrecError
    from digitrec.training.line_recipe import train_lines

    run = tmp_path / "run"
    Steps(monkeypatch, stop="line_filter")
    with pytest.raises(KeyboardInterrupt):
        train_lines(quick_recipe(), run)
    other = replace(quick_recipe(), card_pages=2)
    with pytest.raises(DigitrecError, match="another recipe"):
        train_lines(other, run)


# --- the real steps, at a tiny scale ------------------------------------------------------------


@pytest.mark.slow
def test_a_quick_run_stopped_after_its_line_model_resumes_and_reads_lines(
    tmp_path, mnist_dir, monkeypatch, capsys
):
    from digitrec.data import load_dataset, split_validation
    from digitrec.read.line_reader import LineReader
    from digitrec.read.recognizer import Recognizer
    from digitrec.synth.pages import line_samples
    from digitrec.training import line_recipe

    run = tmp_path / "run"
    real_filter = line_recipe.train_line_filter

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(line_recipe, "train_line_filter", interrupted)
    argv = ["train-lines", "--data-dir", str(mnist_dir)]
    assert main([*argv, "--quick", "--out", str(run)]) == 130
    assert f"digitrec train-lines --resume {run}" in capsys.readouterr().err
    assert (run / "model.keras").is_file() and not (run / "lines.onnx").exists()

    monkeypatch.setattr(line_recipe, "train_line_filter", real_filter)
    monkeypatch.setattr(line_recipe, "train_line_model", lambda *a, **k: pytest.fail("again"))
    assert main([*argv, "--resume", str(run)]) == 0
    out, err = capsys.readouterr()
    assert f"line model  {run / 'lines.onnx'}" in out
    assert "] model card: 1 validation pages" in err  # the steps, one line each
    assert "\r" not in out + err  # no bar redrawn where the output is no terminal

    recognizer = Recognizer.load("default", lines=run)
    assert recognizer.describe()["page_reader"] == str(run / "lines.onnx")
    meta = LineReader.load(run).metadata
    assert meta["recipe"] == asdict(quick_recipe()) and "line_filter" in meta
    assert meta["rejection_figures"]["validation_pages"] == 10
    data = load_dataset("mnist", mnist_dir, progress=False)
    _, _, digits, labels = split_validation(data.train_images, data.train_labels, 5000)
    line = next(s for s in line_samples(digits, labels, 5, seed=3) if s.text)
    reading = recognizer.read(line.image, reader="pages")
    assert set(reading.text) <= set("0123456789? \n")
    card = (run / CARD_FILE).read_text()
    assert "digitrec train-lines --out runs/lines --quick\n" in card
    assert "| user |" in card  # the figures of the validation pages read
    assert np.isfinite(meta["temperature"])


def test_a_run_from_a_trained_model_keeps_its_architecture_and_says_so_in_its_flags(capsys):
    from digitrec.training.line_settings import ARCHITECTURE, from_init, init_settings

    args = build_parser().parse_args(
        ["train-lines", "--out", "x", "--init", "default", "--source", "documents"]
    )
    recipe = recipe_from(args)
    shipped = init_settings("default")
    assert recipe.lines.init == "default" and recipe.lines.source == "documents"
    assert all(getattr(recipe.lines, n) == getattr(shipped, n) for n in ARCHITECTURE)
    flags = recipe_flags(
        replace(recipe, lines=from_init(replace(recipe.lines, width=4), "default"))
    )
    assert flags[:2] == ["--init", "default"] and "--source documents" in flags
    assert not any(flag.startswith("--width") for flag in flags)
    assert main(["train-lines", "--out", "x", "--init", "default", "--width", "8"]) == 2
    assert "whose architecture it keeps: leave out --width" in capsys.readouterr().err


def test_lines_of_known_writers_are_written_one_writer_a_line(real_sets, monkeypatch):
    from functools import partial

    from digitrec.data import DATASETS, Dataset
    from digitrec.realdigits import REAL_DIR_ENV
    from digitrec.synth.documents import document_lines
    from digitrec.training.line_training import LineDigits, line_digits

    monkeypatch.setenv(REAL_DIR_ENV, str(real_sets))
    images = np.zeros((100, 28, 28), np.uint8)
    labels = (np.arange(100) % 10).astype(np.uint8)
    data = Dataset(DATASETS["mnist"], images, labels, images[:1], labels[:1])
    settings = LineTrainSettings(source="documents", real="cvl", real_repeat=2, val_size=20)
    train, val = line_digits(settings, data)
    assert len(train.images) == 80 + 2 * 7000 and len(val.images) == 20 + 7000
    assert (train.writers[:80] == -1).all() and (train.writers[80:] >= 0).all()
    source = train.source(settings)
    assert isinstance(source, partial) and source.func is document_lines
    plain = LineDigits.unknown_writers(images, labels)
    assert plain.source(LineTrainSettings()).__name__ == "line_samples"


def test_a_quick_run_from_the_shipped_model_keeps_its_filter(tmp_path, mnist_dir):
    from digitrec.read.line_reader import LineReader

    run = tmp_path / "run"
    argv = ["train-lines", "--data-dir", str(mnist_dir), "--quick", "--quiet", "--out", str(run)]
    assert main([*argv, "--init", "default", "--source", "documents"]) == 0
    meta, shipped = LineReader.load(run).metadata, LineReader.load("default").metadata
    assert meta["line_filter"] == shipped["line_filter"]  # the starting model's, kept
    assert meta["training_settings"]["width"] == shipped["training_settings"]["width"]
    assert meta["training_settings"]["source"] == "documents"
    card = (run / CARD_FILE).read_text()
    assert "digitrec train-lines --out runs/lines --init default --quick --source documents" in card
    assert "It started from the shipped line model" in card  # the data section says so
    assert "synth.documents.document_lines" in card
