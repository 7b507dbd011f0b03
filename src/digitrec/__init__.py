"""digitrec: handwritten digit recognition on MNIST, from training to a web service.

The public API mirrors the command line (``digitrec <command>``)::

    import digitrec

    data = digitrec.load_dataset("mnist")                      # digitrec data
    run = digitrec.train(digitrec.resolve_config("lenet5"))    # digitrec train
    digitrec.evaluate(run)                                     # digitrec evaluate RUN
    onnx = digitrec.export_model(run, "onnx")                  # digitrec export RUN
    digitrec.Recognizer.load("default").read("cheque.jpg")     # digitrec predict cheque.jpg
    digitrec.Recognizer.load("runs/mine", lines="none")        # digitrec predict --lines none
    options = digitrec.ReadOptions(top_k=1, reader="pages")    # --top-k 1 --reader pages
    digitrec.Recognizer.load().read("form.png", options=options)
    for result in digitrec.read_files(["scans/"], jobs=2):     # digitrec predict scans/ --jobs 2
        print(result["file"], result["text"])

Names are imported on first use, so ``import digitrec`` stays light and the inference path
(``Recognizer``) never imports TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_dataset": "digitrec.data",
    "DATASETS": "digitrec.data",
    "TrainConfig": "digitrec.training.config",
    "MODELS": "digitrec.training.models",
    "build_model": "digitrec.training.models",
    "resolve_config": "digitrec.training.config",
    "train": "digitrec.training.train",
    "resume": "digitrec.training.train",
    "evaluate": "digitrec.training.evaluate",
    "export_model": "digitrec.training.export",
    "Recognizer": "digitrec.read.recognizer",
    "ReadOptions": "digitrec.read.options",
    "Reading": "digitrec.read.results",
    "Line": "digitrec.read.results",
    "Digit": "digitrec.read.results",
    "read_files": "digitrec.batch.jobs",
    "load_image": "digitrec.read.imaging",
    "find_digits": "digitrec.read.imaging",
    "create_app": "digitrec.serve.app",
    "tune": "digitrec.tune",
    "TuneSettings": "digitrec.tune",
    "DigitrecError": "digitrec.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'digitrec' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
