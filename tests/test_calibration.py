"""Calibration: temperature scaling recovers a known temperature; the threshold rejects the
requested fraction; the metrics of accepted digits."""

from __future__ import annotations

import numpy as np
import pytest

from digitrec.read.calibration import (
    apply_temperature,
    calibrate,
    choose_threshold,
    fit_temperature,
    rejection_metrics,
)


def overconfident(n: int = 4000, true_temperature: float = 2.0, seed: int = 0):
    """Labels drawn from softmax(z / T) but probabilities reported as softmax(z): a model that is
    overconfident by a factor T."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 10))
    true = np.exp(logits / true_temperature)
    true /= true.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=p) for p in true])
    reported = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return reported, labels


def test_temperature_scaling_recovers_the_overconfidence_factor():
    probs, labels = overconfident(true_temperature=2.0)
    assert fit_temperature(probs, labels) == pytest.approx(2.0, rel=0.1)


def test_temperature_keeps_the_ranking_and_sums_to_one():
    probs, _ = overconfident(n=50)
    for temperature in (0.5, 1.0, 3.0):
        scaled = apply_temperature(probs, temperature)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0, atol=1e-5)
        assert (scaled.argmax(axis=1) == probs.argmax(axis=1)).all()
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs, atol=1e-6)
    assert apply_temperature(probs, 3.0).max() < probs.max()


def test_threshold_rejects_the_requested_fraction():
    probs, labels = overconfident()
    threshold = choose_threshold(probs, 0.05)
    metrics = rejection_metrics(probs, labels, threshold)
    assert metrics["rejection_rate"] == pytest.approx(0.05, abs=0.002)
    assert metrics["accepted_accuracy"] > metrics["accuracy"]
    assert rejection_metrics(probs, labels, 0.0)["rejection_rate"] == 0.0


def test_calibrate_reports_validation_figures():
    probs, labels = overconfident()
    calibration = calibrate(probs, labels, rejection_rate=0.01)
    assert calibration.temperature == pytest.approx(2.0, rel=0.1)
    assert calibration.val_rejection_rate == pytest.approx(0.01, abs=0.002)
    assert calibration.val_accuracy == pytest.approx((probs.argmax(1) == labels).mean())
    assert "1.0% least confident" in calibration.to_dict()["rule"]


def test_threshold_is_chosen_on_the_user_style_renders_when_given():
    probs, labels = overconfident()
    harder = apply_temperature(probs, 3.0)  # the same digits, read less confidently
    calibration = calibrate(probs, labels, rejection_rate=0.02, user_probs=harder)
    user = apply_temperature(harder, calibration.temperature)
    assert calibration.threshold == pytest.approx(choose_threshold(user, 0.02))
    assert calibration.user_val_rejection_rate == pytest.approx(0.02, abs=0.002)
    assert calibration.val_rejection_rate < 0.02
    assert "rendered as users' images" in calibration.to_dict()["rule"]
