"""The FastAPI app: recognize images over HTTP and serve the drawing page.

The app is thin: it turns a request into one ``Recognizer.read`` call and the reading into the
same JSON object that ``digitrec predict --json`` prints. The model is loaded once at start-up;
decoding and inference run in a worker thread so that the event loop keeps answering.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitrec import __version__
from digitrec.errors import ImageError
from digitrec.imaging import MAX_PIXELS, load_image
from digitrec.recognizer import Reading, Recognizer

STATIC_DIR = Path(__file__).parent / "static"
SETTINGS_ENV = "DIGITREC_SERVE_SETTINGS"
IMAGE_FIELD = "image"
MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """The model to serve, the request limits, and ONNX Runtime threads per worker process."""

    model: str = "default"
    max_body_bytes: int = 10 * MEGABYTE
    max_pixels: int = MAX_PIXELS
    threads: int | None = 1
    concurrent_reads: int = 4  # images decoded and read at once per worker: bounds memory

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        """Settings handed to worker processes through ``$DIGITREC_SERVE_SETTINGS``."""
        raw = os.environ.get(SETTINGS_ENV)
        return cls(**json.loads(raw)) if raw else cls()


class DigitResult(BaseModel):
    label: int | None = Field(description="the digit, or null when it was rejected as unsure")
    confidence: float = Field(description="calibrated probability of the label")
    box: tuple[int, int, int, int] = Field(description="x0, y0, x1, y1 in the image's pixels")
    top: list[tuple[int, float]] = Field(description="the most likely labels with probabilities")


class Recognition(BaseModel):
    """One reading: the same object as a line of ``digitrec predict --json``, without ``file``."""

    text: str = Field(description="the digits read left to right, '?' for a rejected one")
    digits: list[DigitResult]
    error: None = None
    normalized: list[str] = Field(
        description="the 28×28 image the model saw for each digit, as base64 PNG"
    )


class ModelCard(BaseModel):
    """What the served model is, and everything its file records about how it was made."""

    name: str = Field(description="the architecture, e.g. lenet5")
    version: str | None = Field(description="the digitrec version that exported the model")
    test_accuracy: float | None = Field(description="accuracy on the MNIST test set")
    classes: list[str]
    threshold: float = Field(description="confidence below which a digit is reported as '?'")
    temperature: float = Field(description="calibration temperature applied to the logits")
    metadata: dict[str, Any] = Field(description="the full metadata stored in the model file")


class Status(BaseModel):
    status: str


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong with the request")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "the body is over the size limit"},
    415: {"model": ErrorBody, "description": "the body is not an image"},
    422: {"model": ErrorBody, "description": "the image cannot be read, or a bad query value"},
    503: {"model": ErrorBody, "description": "the model is not loaded yet"},
}

RECOGNIZE_BODY = {
    "requestBody": {
        "required": True,
        "description": f"the image as multipart field '{IMAGE_FIELD}', or as the raw body",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {IMAGE_FIELD: {"type": "string", "format": "binary"}},
                    "required": [IMAGE_FIELD],
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def too_large_message(limit: int) -> str:
    return f"the request body is over the limit of {limit / MEGABYTE:g} MB"


class BodyLimit:
    """ASGI middleware answering 413 for a body over the limit, before or while it streams in.

    A declared Content-Length over the limit is refused without reading anything; a body that
    turns out longer (chunked, or a lying header) is cut off as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, too_large_message(self.max_bytes))(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, too_large_message(self.max_bytes))
            return message

        await self.app(scope, limited_receive, send)


async def image_bytes(request: Request) -> bytes:
    """The uploaded image: multipart field ``image``, or the raw body sent as ``image/*``."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type.startswith("image/"):
        data = await request.body()
    elif media_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get(IMAGE_FIELD)
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, f"the form has no file field '{IMAGE_FIELD}'")
            part_type = (upload.content_type or "application/octet-stream").lower()
            if not part_type.startswith(("image/", "application/octet-stream")):
                raise HTTPException(415, f"the '{IMAGE_FIELD}' file is {part_type}, not an image")
            data = await upload.read()
    else:
        raise HTTPException(
            415,
            f"send an image as multipart/form-data field '{IMAGE_FIELD}' or as a raw body with "
            f"an image/* Content-Type, not {media_type or 'no Content-Type'}",
        )
    if not data:
        raise HTTPException(422, "the image is empty")
    return data


def png_base64(image: np.ndarray) -> str:
    """A [0, 1] grayscale image as a base64 PNG string, ready for a data: URL."""
    pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def recognize_bytes(
    recognizer: Recognizer, data: bytes, max_pixels: int, single: bool, top_k: int
) -> dict[str, Any]:
    """Decode, read and describe one image; CPU-bound, so it runs in a worker thread."""
    reading: Reading = recognizer.read(
        load_image(data, max_pixels=max_pixels), single=single, top_k=top_k
    )
    return {
        **reading.to_dict(),
        "error": None,
        "normalized": [png_base64(image) for image in reading.normalized],
    }


def model_card_of(recognizer: Recognizer) -> ModelCard:
    metadata = recognizer.metadata
    return ModelCard(
        name=metadata.get("model_name", "unknown"),
        version=metadata.get("digitrec_version"),
        test_accuracy=metadata.get("test_accuracy"),
        classes=recognizer.classes,
        threshold=recognizer.threshold,
        temperature=recognizer.temperature,
        metadata=metadata,
    )


async def get_recognizer(request: Request) -> Recognizer:
    recognizer = request.app.state.recognizer
    if recognizer is None:
        raise HTTPException(503, "the model is not loaded yet")
    return recognizer


def load_recognizer(settings: ServeSettings) -> Recognizer:
    return Recognizer.load(settings.model, threads=settings.threads)


def validation_message(exc: RequestValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )


def create_app(
    recognizer: Recognizer | None = None, settings: ServeSettings | None = None
) -> FastAPI:
    """The service; loads ``settings.model`` at start-up unless a ready ``recognizer`` is given."""
    settings = settings or ServeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.recognizer is None:
            app.state.recognizer = await run_in_threadpool(load_recognizer, settings)
        yield
        app.state.recognizer = None

    app = FastAPI(
        title="digitrec",
        version=__version__,
        description="Handwritten digit recognition: post an image, get the digits back.",
        lifespan=lifespan,
    )
    app.state.recognizer = recognizer
    app.state.settings = settings
    reads = anyio.CapacityLimiter(settings.concurrent_reads)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(ImageError)
    async def image_error(request: Request, exc: ImageError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return error_response(400, "the client went away before sending the whole body")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(exc))

    @app.post(
        "/api/v1/recognize",
        response_model=Recognition,
        responses=ERROR_RESPONSES,
        openapi_extra=RECOGNIZE_BODY,
        summary="Read the digits in an image",
    )
    async def recognize(
        request: Request,
        recognizer: Annotated[Recognizer, Depends(get_recognizer)],
        single: Annotated[bool, Query(description="read the image as exactly one digit")] = False,
        top_k: Annotated[int, Query(ge=1, le=10, description="labels listed per digit")] = 3,
    ) -> dict[str, Any]:
        data = await image_bytes(request)
        return await anyio.to_thread.run_sync(
            recognize_bytes, recognizer, data, settings.max_pixels, single, top_k, limiter=reads
        )

    @app.get("/api/v1/model", response_model=ModelCard, responses={503: ERROR_RESPONSES[503]})
    async def model_card(
        recognizer: Annotated[Recognizer, Depends(get_recognizer)],
    ) -> ModelCard:
        return model_card_of(recognizer)

    @app.get("/healthz", response_model=Status)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Status,
        responses={503: ERROR_RESPONSES[503]},
        dependencies=[Depends(get_recognizer)],
    )
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/", include_in_schema=False)
    async def drawing_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes; settings come from ``$DIGITREC_SERVE_SETTINGS``."""
    return create_app(settings=ServeSettings.from_env())
