"""The models shipped in the package: ``default.onnx``, which ``Recognizer.load("default")``
serves, and ``default.keras``, the same network as Keras weights for fine-tuning offline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from digitrec.errors import ModelError

DEFAULT_KERAS = "default.keras"


def default_keras_path() -> Path:
    """The shipped default model as a Keras file: the starting point of fine-tuning (the
    ``"default"`` source). Reading it needs Keras (the ``train`` extra); finding it does not."""
    resource = resources.files("digitrec") / "assets" / DEFAULT_KERAS
    if not isinstance(resource, Path) or not resource.is_file():
        raise ModelError(
            f"the default model's Keras file ({DEFAULT_KERAS}) is not installed as a file "
            "with the package: reinstall digitrec"
        )
    return resource
