"""The Keras callbacks of a training run: checkpoint every epoch, set every random state per
epoch, and show progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from digitrec.files import atomic_path, write_json
from digitrec.training.rundir import CHECKPOINT_DIR, STATE_FILE


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: save the model (with optimizer state) atomically, then the run state.

    The state file names the newest complete checkpoint, and older checkpoints are removed only
    after it is written, so a kill at any moment leaves a consistent pair behind.
    """

    def __init__(self, run_dir: Path, state: dict[str, Any]):
        super().__init__()
        self.run_dir = run_dir
        self.state = state
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._started
        history = self.state["history"]
        for key, value in {**(logs or {}), "epoch_seconds": seconds}.items():
            history.setdefault(key, []).append(float(value))
        name = f"{CHECKPOINT_DIR}/epoch-{epoch + 1:03d}.keras"
        with atomic_path(self.run_dir / name, suffix=".keras") as tmp:
            self.model.save(tmp)
        previous = self.state.get("checkpoint")
        self.state.update(epoch=epoch + 1, checkpoint=name)
        write_json(self.run_dir / STATE_FILE, self.state)
        if previous and previous != name:
            (self.run_dir / previous).unlink(missing_ok=True)


class EpochSeeds(keras.callbacks.Callback):
    """Before every epoch, set every random state of training (the data order, the augmentation
    layers, the model's dropout) from ``(seed, epoch)`` alone.

    Keras keeps these states in variables that checkpoints do not save, and each would otherwise
    run on from wherever the process started; so without this a run resumed at epoch k would
    draw other orders, distortions and dropout masks than a run that got there uninterrupted.
    """

    def __init__(self, seed: int, sources: Sequence[Any]):
        super().__init__()
        self.seed = seed
        self.sources = list(sources)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        set_epoch_seeds(self.seed, epoch, [*self.sources, self.model])


def set_epoch_seeds(seed: int, epoch: int, sources: Sequence[Any]) -> None:
    """Start every random state in ``sources`` (seed generators, layers, models) for an epoch:
    the i-th at a state drawn from ``(seed, epoch, i)``."""
    for i, state in enumerate(random_states(sources)):
        start = np.random.SeedSequence([seed, epoch, i]).generate_state(1)[0]
        state.assign(np.array([start, 0], dtype=state.dtype))


def random_states(sources: Sequence[Any]) -> list[Any]:
    """The state variables of the seed generators in ``sources``: a generator's own, a layer's
    variables that are not weights (Keras: "weights exclude ... random seeds")."""
    states = []
    for source in sources:
        if isinstance(source, keras.random.SeedGenerator):
            states.append(source.state)
        else:
            weights = {id(weight) for weight in source.weights}
            states += [v for v in source.variables if id(v) not in weights]
    return states


class Progress(keras.callbacks.ProgbarLogger):
    """Keras's progress display, with the bar stopping at the epoch's last step (Keras 3.15
    counts whole executions of ``steps_per_execution`` batches: 480/469). Where the output is no
    terminal, one plain line per epoch (Keras's ``verbose=2``) instead of redrawn bars."""

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params({**params, "verbose": 1 if sys.stdout.isatty() else 2})

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        last = self.target - 1 if self.target else batch
        super().on_train_batch_end(min(batch, last), logs)


def progress_shown(verbose: bool) -> list[Progress]:
    """The callbacks that show a run's progress: ``Progress``, if ``verbose``."""
    return [Progress()] if verbose else []
