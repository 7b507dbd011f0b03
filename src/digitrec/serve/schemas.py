"""The bodies the API answers with.

A reading's are built from the dataclasses in ``digitrec.read.recognizer`` (their fields, types and
descriptions), so that the API sends every field ``Reading.to_dict`` and ``digitrec predict
--json`` have, and documents it; array fields (images) are sent as base64 PNG.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import Field as DataclassField
from dataclasses import fields
from typing import Any, get_type_hints

import numpy as np
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, Field, create_model

from digitrec.read.recognizer import Recognizer
from digitrec.read.results import Reading, rounded


def is_array(item: DataclassField) -> bool:
    return bool(item.metadata.get("array"))


def api_fields(record: type) -> dict[str, Any]:
    """A result dataclass's fields as pydantic field definitions, with their descriptions;
    an array field (a list of images) becomes a list of base64 PNG strings."""
    hints = get_type_hints(record)
    definitions: dict[str, Any] = {}
    for item in fields(record):
        description = item.metadata["description"]
        if is_array(item):
            definitions[item.name] = (list[str], Field(description=f"{description}, base64 PNG"))
        else:
            definitions[item.name] = (hints[item.name], Field(description=description))
    return definitions


Recognition = create_model(
    "Recognition",
    __doc__="One reading: the same object as a line of ``digitrec predict --json``, without "
    "``file``, and with the images the model saw.",
    **api_fields(Reading),
    error=(None, Field(None, description="always null here; predict reports a bad file in it")),
)


def png_bytes(image: np.ndarray) -> bytes:
    """A [0, 1] grayscale image as an 8-bit PNG file's bytes."""
    pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_base64(image: np.ndarray) -> str:
    """A [0, 1] grayscale image as a base64 PNG string, ready for a data: URL."""
    return base64.b64encode(png_bytes(image)).decode("ascii")


def recognition_of(reading: Reading) -> dict[str, Any]:
    """The reading as the API sends it: ``to_dict()`` with its floats rounded as ``predict
    --json`` writes them, its images as PNG, and no error."""
    images = {
        item.name: [png_base64(image) for image in getattr(reading, item.name)]
        for item in fields(reading)
        if is_array(item)
    }
    return {**rounded(reading.to_dict()), **images, "error": None}


class ModelCard(BaseModel):
    """What the served model is and how it was made; nothing about the machines it was made
    on (no paths, no command lines)."""

    name: str = Field(description="the architecture, e.g. lenet5")
    classifier: str = Field(
        description="the single-digit classifier's model file (its name, without its folders)"
    )
    page_reader: str | None = Field(
        description="the page reader's line model file (its name, without its folders); null "
        "when there is no page reader and the classifier reads every image"
    )
    crop_reader: str | None = Field(
        description="the line model file that reads an image that is a crop of one number (a "
        "cheque's amount, a form's cell); null where the page reader's reads those too"
    )
    version: str | None = Field(description="the digitrec version that exported the model")
    dataset: str | None = Field(description="the dataset it was trained and tested on")
    classes: list[str]
    parameters: int | None = Field(description="trainable and fixed weights")
    test_accuracy: float | None = Field(description="accuracy on the test set")
    threshold: float = Field(description="confidence below which a digit is reported as '?'")
    temperature: float = Field(description="calibration temperature applied to the logits")
    calibration: dict[str, Any] = Field(description="how the calibration was fitted, and on what")
    input: dict[str, Any] = Field(description="the input the model takes")
    training: dict[str, Any] = Field(description="the training settings")


def file_name(source: str) -> str:
    """A model's source without the folders it is in, which may name its machine or user."""
    return re.split(r"[\\/]", source)[-1]


def model_card_of(recognizer: Recognizer) -> ModelCard:
    metadata = recognizer.metadata
    pages = recognizer.pages
    return ModelCard(
        name=metadata.get("model_name", "unknown"),
        classifier=file_name(recognizer.source),
        page_reader=file_name(pages.reader.source) if pages is not None else None,
        crop_reader=file_name(pages.crops.reader.source)
        if pages is not None and pages.crops is not pages
        else None,
        version=metadata.get("digitrec_version"),
        dataset=metadata.get("dataset"),
        classes=recognizer.classes,
        parameters=metadata.get("parameters"),
        test_accuracy=metadata.get("test_accuracy"),
        threshold=recognizer.threshold,
        temperature=recognizer.temperature,
        calibration=metadata.get("calibration", {}),
        input=metadata.get("input", {}),
        training=metadata.get("training_config", {}),
    )


class StoredDigit(BaseModel):
    label: str = Field(description="the corrected digit: the class folder it is stored in")
    file: str = Field(description="the file written, relative to the collection's folder")
    box: tuple[int, int, int, int] = Field(description="x0, y0, x1, y1 in the image's pixels")


class StoredLine(BaseModel):
    text: str = Field(description="the corrected line: its digits, one space between groups")
    file: str = Field(
        description="the line's image, relative to the collection's folder; listed with its "
        "text in lines/labels.csv"
    )
    box: tuple[int, int, int, int] = Field(
        description="x0, y0, x1, y1 of the line read, in the image's pixels (the image stored "
        "has a margin of paper around it)"
    )


class CollectionUsage(BaseModel):
    files: int = Field(description="files the collection holds now")
    bytes: int = Field(description="the disk space its files take now, in bytes (whole blocks)")
    max_files: int = Field(description="the most files it may hold")
    max_bytes: int = Field(description="the most disk space they may take, in bytes")


class CorrectionReceipt(BaseModel):
    """What a correction stored, cut with the boxes of the reading of the image: each digit's
    28×28 image in its label's folder, and each line's image in the lines folder."""

    read: str = Field(description="the text of the reading the correction was cut with")
    stored: list[StoredDigit] = Field(
        description="each digit stored, line by line, left to right (none for a line whose "
        "corrected digits are not as many as those read)"
    )
    lines: list[StoredLine] = Field(
        description="each line stored whole, top to bottom: those the page reader read, and "
        "those whose corrected digits are not as many as those read"
    )
    collection: CollectionUsage


class ServiceConfig(BaseModel):
    """What this service does beyond reading images."""

    corrections: bool = Field(
        description="whether POST /api/v1/corrections stores corrections (digitrec serve --collect)"
    )


class Status(BaseModel):
    status: str


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong with the request")


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
