"""Training settings as data: one dataclass, filled from defaults, a model's recipe and the user."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from digitrec.errors import DigitrecError


@dataclass
class TrainConfig:
    """Every setting of a training run; ``run.json`` stores it whole."""

    model: str = "lenet5"
    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    # Training images held out (the last ones) for validation; 0 = a final fit on all of them.
    val_size: int = 5000
    label_smoothing: float = 0.0
    schedule: str = "constant"  # "constant", "cosine" or "onecycle" (see train.SCHEDULES)
    warmup: float = 0.25  # fraction of the steps spent warming up ("onecycle" only)
    augment: float = 0.0  # strength of random rotation/shift/zoom while training; 0 = off
    elastic: float = 0.0  # strength of elastic distortion while training (augment.py); 0 = off
    # Fraction of the training split replaced by renders as users' images (a seeded fixed mix,
    # digitrec.synthesis); 0 = off. The validation split is never rendered.
    user_style: float = 0.0
    ema: float = 0.0  # momentum of an exponential moving average of the weights; 0 = off
    ensemble: int = 1  # members trained with seeds seed, seed+1, ...; saved as one model
    # model_args of the ensemble's members in turn (member i: member_args[i % len]); [] = alike
    member_args: list[dict[str, Any]] = field(default_factory=list)
    tta: bool = False  # save the model wrapped to average its predictions over small shifts
    steps_per_execution: int = 32  # batches per TensorFlow call (less Python overhead, same maths)
    model_args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DigitrecError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**data)

    def updated(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with the given settings replaced (``None`` values are ignored)."""
        merged = self.to_dict()
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "model_args":
                merged["model_args"] = {**merged["model_args"], **value}
            else:
                merged[key] = value
        return TrainConfig.from_dict(merged)
