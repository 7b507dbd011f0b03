"""Confidence calibration and rejection: temperature scaling and the rejection threshold.

Both are fitted on the validation split at export time and stored in the exported model's
metadata, so the recognizer applies them with NumPy alone. The temperature is fitted on the
validation digits as they are; the threshold is chosen on the same digits rendered as users'
images (``digitrec.synth.user_digits.user_style_inputs``), since that is what the recognizer reads and
those are read less confidently than clean MNIST. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REJECTION_RATE = 0.005  # default: reject the 0.5% least confident (user-style) validation digits
_TINY = 1e-12


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and confidence threshold, with the validation figures behind them:
    on the validation digits as they are (``val_*``) and rendered as users' images
    (``user_val_*``; absent when the threshold was chosen on the digits as they are)."""

    temperature: float
    threshold: float
    target_rejection_rate: float
    val_accuracy: float
    val_accepted_error: float
    val_rejection_rate: float
    user_val_accuracy: float | None = None
    user_val_accepted_error: float | None = None
    user_val_rejection_rate: float | None = None

    def to_dict(self) -> dict[str, float | str | None]:
        digits = "validation digits"
        if self.user_val_accuracy is not None:
            digits += " rendered as users' images"
        return {
            "temperature": self.temperature,
            "threshold": self.threshold,
            "rule": (
                "temperature minimizes the validation NLL; the threshold rejects the "
                f"{self.target_rejection_rate:.1%} least confident {digits}"
            ),
            "target_rejection_rate": self.target_rejection_rate,
            "val_accuracy": self.val_accuracy,
            "val_accepted_error": self.val_accepted_error,
            "val_rejection_rate": self.val_rejection_rate,
            "user_val_accuracy": self.user_val_accuracy,
            "user_val_accepted_error": self.user_val_accepted_error,
            "user_val_rejection_rate": self.user_val_rejection_rate,
        }


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probabilities as softmax(log p / T); T > 1 softens, T < 1 sharpens."""
    logits = np.log(np.clip(probs, _TINY, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimizing the negative log-likelihood of ``labels`` (temperature scaling,
    Guo et al. 2017), searched over log T in [-3, 3]."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        scaled = apply_temperature(probs.astype(np.float64), float(np.exp(log_t)))
        return float(-np.log(np.clip(scaled[rows, labels], _TINY, 1.0)).mean())

    result = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(result.x))


def choose_threshold(probs: np.ndarray, rejection_rate: float) -> float:
    """The confidence below which a fraction ``rejection_rate`` of these digits falls.

    Digits less confident than the threshold are rejected. A fixed rejection rate on validation
    digits keeps the cost of rejection known whatever the model's accuracy.
    """
    return float(np.quantile(probs.max(axis=1), rejection_rate))


def calibrate(
    probs: np.ndarray,
    labels: np.ndarray,
    rejection_rate: float = REJECTION_RATE,
    user_probs: np.ndarray | None = None,
) -> Calibration:
    """Fit the temperature on ``probs``, then choose the threshold on the calibrated
    ``user_probs`` (the same digits rendered as users' images; ``probs`` if not given)."""
    temperature = fit_temperature(probs, labels)
    calibrated = apply_temperature(probs, temperature)
    user = None if user_probs is None else apply_temperature(user_probs, temperature)
    threshold = choose_threshold(calibrated if user is None else user, rejection_rate)
    val = rejection_metrics(calibrated, labels, threshold)
    user_val = {} if user is None else rejection_metrics(user, labels, threshold)
    return Calibration(
        temperature=temperature,
        threshold=threshold,
        target_rejection_rate=rejection_rate,
        val_accuracy=val["accuracy"],
        val_accepted_error=1.0 - val["accepted_accuracy"],
        val_rejection_rate=val["rejection_rate"],
        user_val_accuracy=user_val.get("accuracy"),
        user_val_accepted_error=1.0 - user_val["accepted_accuracy"] if user_val else None,
        user_val_rejection_rate=user_val.get("rejection_rate"),
    )


def rejection_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy of all digits, accuracy of the accepted ones, and the rejection rate."""
    accepted = probs.max(axis=1) >= threshold
    correct = probs.argmax(axis=1) == labels
    return {
        "accuracy": float(correct.mean()),
        "accepted_accuracy": float(correct[accepted].mean()) if accepted.any() else 0.0,
        "rejection_rate": float(1.0 - accepted.mean()),
    }
