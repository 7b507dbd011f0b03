"""Hyperparameter search: tiny studies on a small synthetic dataset, run in real worker processes."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import optuna
import pytest

from digitrec import data
from digitrec.cli import main
from digitrec.data import DataFile, DatasetInfo
from digitrec.errors import DigitrecError
from digitrec.training.config import resolve_config
from digitrec.training.models import MODELS, ModelSpec, build_model
from digitrec.tune import (
    FINISHED,
    STARTUP_TRIALS,
    Param,
    TuneSettings,
    default_space,
    driver_url,
    nested,
    open_storage,
    open_study,
    resolve_space,
    retrain,
    search_record,
    subset_dataset,
    tune,
)
from digitrec.tune.report import leaderboard, write_figures

TRAIN, VAL, TEST = 600, 200, 100


def write_idx(path: Path, array: np.ndarray) -> DataFile:
    magic = 0x0803 if array.ndim == 3 else 0x0801
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    content = header + array.astype(np.uint8).tobytes()
    path.write_bytes(content)
    return DataFile(path.name, hashlib.sha256(content).hexdigest(), len(array))


def digit_images(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Learnable stand-ins for digits: class k is a bright bar at row 2k + 4, over noise."""
    labels = rng.integers(0, 10, count)
    images = rng.integers(0, 60, (count, 28, 28))
    for image, label in zip(images, labels, strict=True):
        image[2 * label + 4 : 2 * label + 6, 4:24] = 255
    return images, labels


@dataclass(frozen=True)
class Synthetic:
    info: DatasetInfo
    directory: Path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    """A tiny dataset of IDX files, described by its own DatasetInfo."""
    directory = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    train_images, train_labels = digit_images(TRAIN + VAL, rng)
    test_images, test_labels = digit_images(TEST, rng)
    arrays = {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }
    files = {part: write_idx(directory / part, array) for part, array in arrays.items()}
    info = DatasetInfo("synthetic", tuple(str(d) for d in range(10)), files, mirrors=())
    return Synthetic(info, directory)


def settings_for(synthetic: Synthetic, out: Path, **changes) -> TuneSettings:
    base = TuneSettings(
        model="lenet5",
        trials=3,
        dataset=synthetic.info,
        data_dir=synthetic.directory,
        fixed={"epochs": 1, "val_size": VAL},
        progress=False,
        out=out,
    )
    return replace(base, **changes)


def stored_trials(settings: TuneSettings) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(
        study_name=settings.study_name, storage=open_storage(settings.storage_url)
    ).trials


@pytest.fixture(scope="module")
def two_worker_search(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory):
    settings = settings_for(synthetic, tmp_path_factory.mktemp("study"), trials=4, workers=2)
    return settings, tune(settings)


def test_two_workers_share_one_study_without_losing_trials(two_worker_search):
    settings, _ = two_worker_search
    trials = stored_trials(settings)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state in FINISHED for t in trials)
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4


def test_search_writes_leaderboard_best_params_and_figures(two_worker_search):
    settings, result = two_worker_search
    best = result.study.best_trial
    assert result.best_params == json.loads(result.best_params_file.read_text())
    assert result.best_params["learning_rate"] == best.params["learning_rate"]
    assert result.best_params["model_args"]["dropout"] == best.params["model_args.dropout"]
    assert "model" not in result.best_params
    assert f"{best.value:.4f}" in (settings.folder / "leaderboard.txt").read_text()
    assert (settings.folder / "optimization_history.png").read_bytes()[:8] == PNG
    assert not (settings.folder / "param_importances.png").exists()  # from 4 trials: meaningless


PNG = b"\x89PNG\r\n\x1a\n"
LONG_NAMES = [f"model_args.a_rather_long_parameter_name_{i}" for i in range(8)]


def made_study(trials: int, names: list[str] = LONG_NAMES) -> optuna.Study:
    """An in-memory study of ``trials`` complete trials of parameters of these ``names``."""
    study = optuna.create_study(direction="maximize", study_name="a-study-" + "x" * 60)
    distribution = optuna.distributions.FloatDistribution(1e-5, 1.0, log=True)
    rng = np.random.default_rng(0)
    for _ in range(trials):
        params = {name: float(rng.uniform(1e-5, 1.0)) for name in names}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dict.fromkeys(names, distribution),
                value=float(rng.uniform(0.9, 1.0)),
                user_attrs={"train_seconds": 123.45},
            )
        )
    return study


def test_the_leaderboard_of_a_study_with_long_names_fits_100_columns():
    board = leaderboard(made_study(12))
    assert max(len(line) for line in board.splitlines()) <= 100, board
    assert "12 complete" in board and board.count("123.45") == 10
    assert all(f"{name}=" in board for name in LONG_NAMES) and "…" not in board
    short = leaderboard(made_study(3, ["dropout", "learning_rate"]))
    header = [line for line in short.splitlines() if "val acc" in line]
    assert len(header) == 1 and "dropout" in header[0] and "learning_rate" in header[0]


def test_parameter_importances_are_drawn_only_from_10_trials_on(tmp_path, capsys):
    few, many = tmp_path / "few", tmp_path / "many"
    few.mkdir(), many.mkdir()
    write_figures(made_study(9), few)
    assert not (few / "param_importances.png").exists()
    assert "from 9 complete trials are not meaningful" in capsys.readouterr().err
    write_figures(made_study(10), many)
    assert (many / "param_importances.png").read_bytes()[:8] == PNG
    assert "not meaningful" not in capsys.readouterr().err


def test_the_progress_bar_is_drawn_on_a_terminal_only_and_trial_lines_always(capsys, monkeypatch):
    from digitrec.tune import report

    study = made_study(1)
    settings = TuneSettings(trials=3, progress=True)
    piped = report.Progress(made_study(0), settings)
    assert piped.bar.disable  # stderr is captured here: no terminal
    monkeypatch.setattr(report, "bar_shown", lambda: True)
    on_terminal = report.Progress(made_study(0), settings)
    assert not on_terminal.bar.disable
    on_terminal.close()
    piped(study)
    piped.close()
    assert "trial   0 done" in capsys.readouterr().out
    assert report.Progress(study, replace(settings, progress=False)).bar.disable


def test_best_params_file_is_accepted_by_digitrec_train(two_worker_search, synthetic, tmp_path):
    _, result = two_worker_search
    run_dir = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(data.DATASETS, "synthetic", synthetic.info)
        params = ["--params", str(result.best_params_file), "--data-dir", str(synthetic.directory)]
        status = main(["train", "--model", "lenet5", *params, "--out", str(run_dir), "--quiet"])
    assert status == 0
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert config == {**result.best_params, "model": "lenet5"}


def test_retrain_trains_the_best_settings_once_and_tests_them(two_worker_search, synthetic):
    _, result = two_worker_search
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(data.DATASETS, "synthetic", synthetic.info)
        run_dir = retrain(result, synthetic.directory, verbose=False)
        metrics = run_dir / "metrics.json"
        written = metrics.stat().st_mtime_ns
        assert retrain(result, synthetic.directory, verbose=False) == run_dir
    assert metrics.stat().st_mtime_ns == written
    assert run_dir.name == f"retrain-trial{result.study.best_trial.number}"
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert config == {**result.best_params, "model": "lenet5"}
    test = data.load_dataset(synthetic.info, synthetic.directory, progress=False)
    model = keras.saving.load_model(run_dir / "model.keras")
    predicted = model.predict(data.as_model_input(test.test_images), verbose=0).argmax(axis=1)
    reported = json.loads(metrics.read_text())["test_accuracy"]
    assert reported == pytest.approx(float((predicted == test.test_labels).mean()))


def test_killed_search_resumes_without_repeating_finished_trials(synthetic, tmp_path):
    settings = settings_for(synthetic, tmp_path / "study", trials=4)
    pickled = tmp_path / "settings.pickle"
    pickled.write_bytes(pickle.dumps(settings))
    code = "import pickle, sys; from digitrec.tune import tune; tune(pickle.load(open(sys.argv[1], 'rb')))"
    process = subprocess.Popen([sys.executable, "-c", code, str(pickled)], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (done := finished(settings)) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the search and its worker, mid-trial
        process.wait()
    assert 1 <= len(done) < 4, "the search should have been killed part-way"

    tune(replace(settings, trials=5))

    after = {t.number: t for t in finished(settings)}
    assert len(after) == 5
    for trial in done:  # finished before the kill: kept as they were, not run again
        assert after[trial.number].params == trial.params
        assert after[trial.number].value == trial.value
    assert len({json.dumps(t.params, sort_keys=True) for t in after.values()}) == 5


def finished(settings: TuneSettings) -> list[optuna.trial.FrozenTrial]:
    if not (settings.folder / "study.db").exists():
        return []
    try:
        return [t for t in stored_trials(settings) if t.state in FINISHED]
    except (DigitrecError, KeyError):  # the study is not created yet
        return []


def test_negative_seed_is_refused_before_the_study_is_made(synthetic, tmp_path):
    with pytest.raises(DigitrecError, match="--seed must be at least 0"):
        tune(settings_for(synthetic, tmp_path / "study", seed=-1))
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "a\\b", ""])
def test_a_study_name_that_is_no_plain_name_is_refused(name, synthetic, tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(DigitrecError, match=r"--study .*: give a plain name, without '/'"):
        tune(settings_for(synthetic, None, study=name))
    assert [p.name for p in tmp_path.rglob("*")] == ["here"]


def user_files(folder: Path) -> dict[str, str]:
    """A user's folder holding files of the names a search writes; what it holds."""
    folder.mkdir()
    for name in ("best_params.json", "leaderboard.txt"):
        (folder / name).write_text(f"the user's {name}")
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_a_folder_that_is_not_a_studys_is_refused_and_left_as_it_was(synthetic, tmp_path):
    folder = tmp_path / "mine"
    before = user_files(folder)
    with pytest.raises(
        DigitrecError,
        match=r"mine holds files that are not part of a digitrec study "
        r"\(best_params.json, leaderboard.txt\); a search writes into a new or empty folder",
    ):
        tune(settings_for(synthetic, folder))
    assert {p.name: p.read_text() for p in folder.iterdir()} == before


def test_a_studys_folder_is_continued_unless_it_holds_what_a_search_does_not_write(
    two_worker_search, tmp_path
):
    settings, _ = two_worker_search
    earlier = tmp_path / "earlier"  # as a search before the folders were marked left it
    shutil.copytree(settings.folder, earlier)
    (earlier / "digitrec-study.json").unlink()
    again = replace(settings, out=earlier, workers=1)
    assert tune(again).best_params_file == earlier / "best_params.json"  # no trial is missing
    assert (earlier / "digitrec-study.json").is_file()
    (earlier / "notes.txt").write_text("mine")
    with pytest.raises(DigitrecError, match=r"earlier holds files .* \(notes.txt\)"):
        tune(again)
    assert (earlier / "notes.txt").read_text() == "mine"


def test_study_refuses_a_rerun_with_other_settings(two_worker_search):
    settings, _ = two_worker_search
    with pytest.raises(DigitrecError, match=r"created with other settings.*subset"):
        tune(replace(settings, subset=100))


@pytest.mark.parametrize(
    "url",
    ["foo://bar", "runs/study.db", "sqlite:////no/such/directory/study.db"],
)
def test_bad_storage_url_gives_a_clear_error(synthetic, tmp_path, url):
    with pytest.raises(DigitrecError, match="cannot open study storage"):
        tune(settings_for(synthetic, tmp_path, storage=url))


def test_storage_that_another_process_is_creating_is_opened_on_a_retry(tmp_path, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from digitrec.tune import storage as storage_module

    real, calls = storage_module._rdb_storage, []

    def lose_the_first_race(url):
        calls.append(url)
        if len(calls) == 1:
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE constraint"))
        return real(url)

    monkeypatch.setattr(storage_module, "_rdb_storage", lose_the_first_race)
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert len(calls) == 2 and storage.get_all_studies() == []


def test_storage_error_hides_the_password(synthetic, tmp_path):
    url = "postgresql://user:secret@localhost:1/digitrec"
    with pytest.raises(DigitrecError) as error:
        tune(settings_for(synthetic, tmp_path, storage=url))
    assert "secret" not in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db/tune",
        "postgresql+psycopg://u:p@db/tune",
        "postgresql+psycopg2://u:p@db/tune",
    ],
)
def test_every_postgresql_spelling_uses_the_one_installed_driver(url):
    assert driver_url(url) == "postgresql+psycopg://u:p@db/tune"


def test_sqlite_url_is_used_as_given():
    assert driver_url("sqlite:////tmp/study.db") == "sqlite:////tmp/study.db"


def test_missing_postgresql_driver_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(DigitrecError, match=r"driver is not installed.*digitrec\[scale\]"):
        open_storage("postgresql://user:secret@localhost:1/digitrec")


def sampled(trial: optuna.Trial, space: dict[str, Param]) -> dict:
    return {name: param.suggest(trial, name) for name, param in space.items()}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_processes_opening_one_study_at_once_draw_different_trials(tmp_path):
    settings = TuneSettings(out=tmp_path, progress=False)  # as on two machines: same settings
    space, fixed = resolve_space(settings.model)
    record = search_record(settings, space, fixed)
    first, second = open_study(settings, record), open_study(settings, record)
    assert sampled(first.ask(), space) != sampled(second.ask(), space)


def seeded_search(folder: Path, seed: int, trials: int) -> list[dict]:
    """A single worker's draws on a fresh study, each trial scored by its own learning rate."""
    folder.mkdir()
    settings = TuneSettings(out=folder, seed=seed, progress=False)
    space, fixed = resolve_space(settings.model)
    study = open_study(settings, search_record(settings, space, fixed))
    draws = []
    for _ in range(trials):
        trial = study.ask()
        draws.append(sampled(trial, space))
        study.tell(trial, draws[-1]["learning_rate"])
    return draws


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_one_worker_with_the_same_seed_draws_the_same_trials_again(tmp_path):
    trials = STARTUP_TRIALS + 2  # into TPE's steering too
    again = seeded_search(tmp_path / "a", 7, trials)
    assert again == seeded_search(tmp_path / "b", 7, trials)
    other = seeded_search(tmp_path / "c", 8, trials)
    assert all(a != b for a, b in zip(again, other, strict=True))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("space.json", '{"learning_rate": ', "not valid JSON/YAML"),
        ("space.yaml", "learning_rate: [1, 2", "not valid JSON/YAML"),
        ("space.yaml", "- learning_rate", "must hold a mapping"),
        ("space.yaml", "widht: {type: int, low: 1, high: 2}", "'widht' is not a training setting"),
        ("space.yaml", "model_args.width: 3", "not a training setting or an argument of"),
        ("space.yaml", "learning_rate: {type: float, low: 1, high: 0}", "bad range"),
        ("space.yaml", "learning_rate: {type: float, low: 0, high: 1, log: true}", "log scale"),
        ("space.yaml", "batch_size: {type: choice, choices: [1]}", "type must be"),
        ("space.yaml", "batch_size: {type: categorical, choices: []}", "non-empty list"),
        ("space.yaml", "epochs: {type: int, low: 1, high: 2.5}", "int low and high"),
    ],
)
def test_bad_search_space_file_gives_a_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DigitrecError, match=message):
        resolve_space("lenet5", path)


def test_missing_search_space_file_gives_a_clear_error(tmp_path):
    with pytest.raises(DigitrecError, match="cannot read search-space file"):
        resolve_space("lenet5", tmp_path / "nothing.yaml")


def test_space_file_changes_fixes_and_removes_parameters(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "learning_rate: {type: float, low: 0.001, high: 0.01, log: true}\n"
        "batch_size: 64\n"
        "model_args.dropout: null\n"
    )
    space, fixed = resolve_space("lenet5", path, {"epochs": 2})
    assert space["learning_rate"] == Param("float", 0.001, 0.01, log=True)
    assert "batch_size" not in space and fixed["batch_size"] == 64
    assert "model_args.dropout" not in space and "model_args.dense_dropout" in space
    assert "epochs" not in space and fixed["epochs"] == 2


def register_for_test(monkeypatch, build, space=None) -> str:
    monkeypatch.setitem(MODELS, "probe", ModelSpec("probe", build, "a test model", {}, space))
    return "probe"


def probe_builder(
    num_classes: int = 10,
    scale: float = 0.5,
    dropout: float = 0.1,
    width: int = 8,
    mode: Literal["a", "b"] = "a",
    flag: bool = False,
    sizes: tuple[int, int] = (1, 2),
    offset: float = 0.0,
):
    raise AssertionError("the search space is made without building the model")


def test_registered_space_is_the_one_searched(monkeypatch):
    lr = {"type": "float", "low": 0.01, "high": 0.02}
    model = register_for_test(
        monkeypatch,
        probe_builder,
        {"learning_rate": lr, "model_args.width": {"type": "categorical", "choices": [4, 8]}},
    )
    assert default_space(model) == {
        "learning_rate": Param("float", 0.01, 0.02),
        "model_args.width": Param("categorical", choices=(4, 8)),
    }


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"learnin_rate": {"type": "float", "low": 0, "high": 1}},
            "'learnin_rate' is not a training setting",
        ),
        (
            {"model_args.depth": {"type": "int", "low": 1, "high": 2}},
            "not a training setting or an argument of 'probe'",
        ),
        (
            {"learning_rate": {"type": "float", "low": 1, "high": 0}},
            "model 'probe': search space: learning_rate: bad range",
        ),
    ],
)
def test_bad_registered_space_gives_a_clear_error(monkeypatch, space, message):
    model = register_for_test(monkeypatch, probe_builder, space)
    with pytest.raises(DigitrecError, match=message):
        resolve_space(model)


def test_model_registered_without_a_space_searches_its_arguments_and_reports_the_rest(monkeypatch):
    model = register_for_test(monkeypatch, probe_builder)
    with pytest.warns(UserWarning, match="arguments flag, sizes, offset are not searched"):
        space = default_space(model)
    assert space["model_args.scale"] == Param("float", 0.05, 5.0, log=True)
    assert space["model_args.dropout"] == Param("float", 0.0, 0.6)
    assert space["model_args.width"] == Param("int", 4, 16, log=True)
    assert space["model_args.mode"] == Param("categorical", choices=("a", "b"))
    assert not {"model_args.flag", "model_args.sizes", "model_args.offset"} & set(space)
    assert {"learning_rate", "schedule", "batch_size", "epochs"} <= set(space)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_default_space_of_every_model_builds_at_both_ends(model):
    space, fixed = resolve_space(model)
    assert {"learning_rate", "batch_size", "epochs"} <= set(space)
    assert resolve_config(model, **nested(fixed)).val_size > 0  # scored on held-out images
    for end in ("low", "high"):
        model_args = {
            key.partition(".")[2]: (
                param.choices[0 if end == "low" else -1] if param.choices else getattr(param, end)
            )
            for key, param in space.items()
            if key.startswith("model_args.")
        }
        assert build_model(model, 10, **model_args).count_params() > 0


def test_subset_keeps_the_validation_split(synthetic):
    dataset = data.load_dataset(synthetic.info, synthetic.directory, progress=False)
    small = subset_dataset(dataset, 100, VAL)
    assert len(small.train_images) == 100 + VAL
    np.testing.assert_array_equal(small.train_images[100:], dataset.train_images[-VAL:])
    with pytest.raises(DigitrecError, match="--subset"):
        subset_dataset(dataset, TRAIN + 1, VAL)
