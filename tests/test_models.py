"""The model registry: every model trains and round-trips through a file; ensembles and
test-time augmentation average what they should; schedules and compute counts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitrec.training.models import MODELS


def tiny_batch(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.random((n, 28, 28, 1), dtype=np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    return images, labels


def small_mlp(seed: int):
    import keras

    from digitrec.training.models import build_model

    keras.utils.set_random_seed(seed)
    return build_model("mlp", hidden=(8, 8))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_a_step_and_reloads_with_identical_predictions(name, tmp_path):
    import keras

    from digitrec.training.config import resolve_config
    from digitrec.training.model_setup import compile_model
    from digitrec.training.models import build_model

    images, labels = tiny_batch()
    model = build_model(name)
    compile_model(model, resolve_config(name), steps_per_epoch=1)
    before = [w.copy() for w in model.get_weights()]
    model.fit(images, labels, batch_size=len(images), epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    probs = model.predict(images, verbose=0)
    assert probs.shape == (len(images), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), probs)


def test_ensemble_predicts_the_mean_of_its_members_and_reloads(tmp_path):
    import keras

    from digitrec.training.models import ensemble

    images, _ = tiny_batch()
    members = [small_mlp(seed) for seed in (1, 2)]
    expected = np.mean([m.predict(images, verbose=0) for m in members], axis=0)
    model = ensemble(members)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, rtol=1e-6)
    model.save(tmp_path / "ensemble.keras")
    loaded = keras.saving.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-6)


def test_shift_layer_moves_the_image_and_fills_with_background():
    from digitrec.training.models import shift_layer

    image = np.zeros((1, 28, 28, 1), np.float32)
    image[0, 5, 5, 0] = 1.0
    image[0, 27, 0, 0] = 0.5  # pushed off the edge by the shift below
    shifted = np.asarray(shift_layer(1, -2)(image))
    assert shifted.shape == image.shape
    assert shifted[0, 6, 3, 0] == 1.0 and shifted.sum() == 1.0


def test_tta_averages_the_model_over_the_shifted_images(tmp_path):
    import keras

    from digitrec.training.models import shift_layer, with_tta

    images, _ = tiny_batch()
    model = small_mlp(3)
    shifts = ((0, 0), (2, 0), (0, -1))
    expected = np.mean(
        [model.predict(np.asarray(shift_layer(dy, dx)(images)), verbose=0) for dy, dx in shifts],
        axis=0,
    )
    wrapped = with_tta(model, shifts)
    np.testing.assert_allclose(wrapped.predict(images, verbose=0), expected, rtol=1e-5)
    wrapped.save(tmp_path / "tta.keras")
    loaded = keras.saving.load_model(tmp_path / "tta.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-5)
    assert not np.allclose(expected, model.predict(images, verbose=0))


def test_multiply_accumulates_are_counted_from_layer_shapes():
    import keras
    from keras import layers

    from digitrec.training.models import multiply_accumulates

    model = keras.Sequential(
        [keras.Input((28, 28, 1)), layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(10)]
    )
    assert multiply_accumulates(model) == 26 * 26 * 3 * 3 * 1 * 4 + 26 * 26 * 4 * 10
    assert multiply_accumulates(small_mlp(0)) == 784 * 8 + 8 * 8 + 8 * 10


def test_one_cycle_schedule_warms_up_to_the_peak_then_decays_to_zero():
    from digitrec.training.config import resolve_config
    from digitrec.training.model_setup import learning_rate

    config = resolve_config("fast", learning_rate=0.01, schedule="onecycle", warmup=0.25, epochs=2)
    schedule = learning_rate(config, steps_per_epoch=50)  # 100 steps, 25 of warm-up
    rates = [float(schedule(step)) for step in (0, 10, 25, 60, 100)]
    assert rates[0] == pytest.approx(0.01 / 25)
    assert rates[0] < rates[1] < rates[2] == pytest.approx(0.01)
    assert rates[2] > rates[3] > rates[4] == pytest.approx(0.0, abs=1e-9)


def test_ensemble_run_saves_one_averaging_model_and_resumes_a_missing_member(
    tiny_registered, tmp_path
):
    import shutil

    import keras

    from digitrec.errors import DigitrecError
    from digitrec.training.config import resolve_config
    from digitrec.training.models import with_tta
    from digitrec.training.train import resume, train

    config = resolve_config(
        "mlp", dataset="tiny", epochs=1, batch_size=16, val_size=10, seed=4, ensemble=2,
        tta=True, model_args={"hidden": (8, 8)}, member_args=[{}, {"dropout": 0.3}],
    )  # fmt: skip
    run_dir = train(config, tmp_path / "run", tiny_registered, verbose=False)
    member_dirs = [run_dir / "members" / f"seed-{seed}" for seed in (4, 5)]
    seconds = [json.loads((d / "metrics.json").read_text())["train_seconds"] for d in member_dirs]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # each figure is rounded to 6 significant digits: the sum's own rounding and its parts'
    assert metrics["train_seconds"] == pytest.approx(sum(seconds), rel=2e-5)
    model = keras.saving.load_model(run_dir / "model.keras")
    members = [keras.saving.load_model(d / "model.keras") for d in member_dirs]
    assert [m.layers[2].rate for m in members] == [0.2, 0.3]  # member_args in turn
    assert all(m.layers[1].units == 8 for m in members)  # model_args for all
    images, _ = tiny_batch()
    expected = np.mean([with_tta(m).predict(images, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, rtol=1e-5)

    kept = member_dirs[0] / "model.keras"
    kept_time = kept.stat().st_mtime_ns
    (run_dir / "metrics.json").unlink()  # as if killed while the second member trained
    shutil.rmtree(member_dirs[1])
    resume(run_dir, tiny_registered, verbose=False)
    assert (run_dir / "metrics.json").is_file() and (member_dirs[1] / "metrics.json").is_file()
    assert kept.stat().st_mtime_ns == kept_time

    (run_dir / "metrics.json").unlink()
    record = json.loads((member_dirs[1] / "run.json").read_text())
    record["config"]["member_args"], record["config"]["model_args"] = [], {"hidden": [8, 8]}
    (member_dirs[1] / "run.json").write_text(json.dumps(record))  # a member trained otherwise
    with pytest.raises(DigitrecError, match=r"other settings.*'model_args'"):
        resume(run_dir, tiny_registered, verbose=False)


def test_best_ensemble_members_alternate_3x3_and_5x5_kernels():
    from digitrec.training.config import resolve_config
    from digitrec.training.train import member_configs

    members = member_configs(resolve_config("best", seed=7, ensemble=5))
    assert [m.seed for m in members] == [7, 8, 9, 10, 11]
    assert [m.model_args for m in members] == [{}, {"kernel": 5}, {}, {"kernel": 5}, {}]
    assert all(m.ensemble == 1 and not m.member_args for m in members)
    single = resolve_config("best", seed=7)  # one network: the 3x3 one
    assert member_configs(single)[0].model_args == {}


@pytest.mark.mnist
@pytest.mark.slow
def test_fast_recipe_reaches_98_8_percent_on_mnist(mnist_dir, tmp_path):
    from digitrec.training.config import resolve_config
    from digitrec.training.train import train

    run_dir = train(resolve_config("fast"), tmp_path / "fast", mnist_dir, verbose=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.988, metrics["test_accuracy"]
