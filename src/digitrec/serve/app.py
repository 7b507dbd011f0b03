"""The FastAPI app: recognize images over HTTP and serve the drawing page.

The app is thin: it turns a request into one ``Recognizer.read`` call and the reading into the
same JSON object that ``digitrec predict --json`` prints. The model is loaded once at start-up;
decoding and inference run in worker threads, a few at a time (``capacity``), so that the event
loop keeps answering and memory stays bounded.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
import swagger_ui_bundle
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect

from digitrec import __version__
from digitrec.errors import ImageError
from digitrec.read.imaging import MAX_PIXELS
from digitrec.read.options import DEFAULT_READER, READERS, ReadOptions
from digitrec.read.recognizer import NO_LINES, Recognizer
from digitrec.serve.capacity import ReadCapacity, Saturated, TooManyUploads, UploadsPerClient
from digitrec.serve.corrections import DIGITS_FIELD, Collection, store_correction
from digitrec.serve.middleware import (
    PAGE_HEADERS,
    PAGE_POLICY,
    BodyLimit,
    CrossSiteWrites,
    JsonErrors,
    SecurityHeaders,
)
from digitrec.serve.schemas import (
    CorrectionReceipt,
    ErrorBody,
    ModelCard,
    Recognition,
    ServiceConfig,
    Status,
    error_response,
    model_card_of,
    recognition_of,
)
from digitrec.serve.settings import ServeSettings

STATIC_DIR = Path(__file__).parent / "static"
DOCS_URL = "/docs"
SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)  # Swagger UI, served for /docs offline
IMAGE_FIELD = "image"
RETRY_AFTER_S = 1  # what a refused client is told to wait: reads take milliseconds
T = TypeVar("T")
Single = Annotated[bool, Query(description="read the image as exactly one digit")]
Reader = Annotated[
    Literal[READERS],  # type: ignore[valid-type]
    Query(
        description="'digits': the single-digit classifier; 'pages': lines found and read by "
        "the line model; 'auto': the page reader, or the classifier where it is surer"
    ),
]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the Host header is not one this service answers"},
    403: {"model": ErrorBody, "description": "sent by a browser from another site's page"},
    408: {"model": ErrorBody, "description": "the body took too long to arrive"},
    413: {"model": ErrorBody, "description": "the body is over the size limit"},
    415: {"model": ErrorBody, "description": "the body is not an image"},
    422: {"model": ErrorBody, "description": "the image cannot be read, or a bad query value"},
    429: {
        "model": ErrorBody,
        "description": "this client is sending as many bodies at once as it may (see Retry-After)",
    },
    503: {
        "model": ErrorBody,
        "description": "the model is not loaded yet, or the worker is busy (see Retry-After)",
    },
}

CORRECTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{code: ERROR_RESPONSES[code] for code in (400, 403, 408, 413, 415, 429)},
    404: {"model": ErrorBody, "description": "corrections are not collected by this service"},
    422: {
        "model": ErrorBody,
        "description": "the image cannot be read, the digits are not digits, nothing was read "
        "in the image, or the correction has another number of lines than the reading",
    },
    503: {"model": ErrorBody, "description": "the worker is busy (see Retry-After)"},
    507: {"model": ErrorBody, "description": "the collection is full"},
}

CORRECTION_BODY = {
    "requestBody": {
        "required": True,
        "description": f"the image as field '{IMAGE_FIELD}' and the digits it shows as field "
        f"'{DIGITS_FIELD}', written as a reading's text is: a line of digits for each line read, "
        "top to bottom, separated by line breaks (spaces between groups are kept); send the "
        "query options the image was recognized with",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        IMAGE_FIELD: {"type": "string", "format": "binary"},
                        DIGITS_FIELD: {
                            "type": "string",
                            "pattern": "^[0-9 \\r\\n]+$",
                            "example": "17 25\n300",
                        },
                    },
                    "required": [IMAGE_FIELD, DIGITS_FIELD],
                }
            }
        },
    }
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


def media_type_of(request: Request) -> str:
    """The request's Content-Type without its parameters, lowercase ("" if none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def image_bytes(request: Request) -> bytes:
    """The uploaded image: multipart field ``image``, or the raw body sent as ``image/*``."""
    media_type = media_type_of(request)
    if media_type.startswith("image/"):
        data = await request.body()
    elif media_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            data = await form_image(form)
    else:
        raise HTTPException(
            415,
            f"send an image as multipart/form-data field '{IMAGE_FIELD}' or as a raw body with "
            f"an image/* Content-Type, not {media_type or 'no Content-Type'}",
        )
    if not data:
        raise HTTPException(422, "the image is empty")
    return data


async def form_image(form: FormData) -> bytes:
    """The bytes of the form's file field ``image``; 422 if it has none, 415 if not an image."""
    upload = form.get(IMAGE_FIELD)
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, f"the form has no file field '{IMAGE_FIELD}'")
    part_type = (upload.content_type or "application/octet-stream").lower()
    if not part_type.startswith(("image/", "application/octet-stream")):
        raise HTTPException(415, f"the '{IMAGE_FIELD}' file is {part_type}, not an image")
    return await upload.read()


async def correction_form(request: Request) -> tuple[bytes, str]:
    """The image and the digits it shows, from a multipart form."""
    media_type = media_type_of(request)
    if media_type != "multipart/form-data":
        raise HTTPException(
            415,
            f"send multipart/form-data with the image as field '{IMAGE_FIELD}' and the digits "
            f"it shows as field '{DIGITS_FIELD}', not {media_type or 'no Content-Type'}",
        )
    async with request.form(max_files=1, max_fields=10) as form:
        data = await form_image(form)
        digits = form.get(DIGITS_FIELD)
    if not isinstance(digits, str):
        raise HTTPException(
            422, f"the form has no text field '{DIGITS_FIELD}' (the digits the image shows)"
        )
    return data, digits


async def departure(request: Request) -> None:
    """Return once the client has left. Awaited after the body is read, when the server's
    next message can only be the disconnect (uvicorn also sends it once the response is out)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def within(seconds: float, body: Awaitable[T]) -> T:
    """``body`` (reading a request's body) if it arrives within ``seconds``, else 408."""
    try:
        with anyio.fail_after(seconds):
            return await body
    except TimeoutError:
        raise HTTPException(408, f"the body took over {seconds:g} s to arrive") from None


def recognize_bytes(recognizer: Recognizer, data: bytes, options: ReadOptions) -> dict[str, Any]:
    """Decode, read and describe one image; CPU-bound, so it runs in a worker thread."""
    return recognition_of(recognizer.read(data, options=options))


def request_options(
    recognizer: Recognizer, settings: ServeSettings, single: bool, reader: str, top_k: int = 3
) -> ReadOptions:
    """How a request's image is read: the options of its query, with the service's pixel
    limit; 422 for the page reader from a service that has none."""
    if reader == "pages" and recognizer.pages is None:
        raise HTTPException(
            422,
            f"this service has no page reader (digitrec serve --lines {NO_LINES}): read with "
            "reader 'auto' or 'digits'",
        )
    return ReadOptions(single, top_k, settings.max_pixels or MAX_PIXELS, reader)


async def get_recognizer(request: Request) -> Recognizer:
    recognizer = request.app.state.recognizer
    if recognizer is None:
        raise HTTPException(503, "the model is not loaded yet")
    return recognizer


def load_recognizer(settings: ServeSettings) -> Recognizer:
    lines = None if settings.lines == NO_LINES else settings.lines
    return Recognizer.load(settings.model, threads=settings.threads, lines=lines)


def validation_message(exc: RequestValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )


def client_address(request: Request) -> str:
    """The address the request came from ("" if the server does not say)."""
    return request.client.host if request.client else ""


def busy_response() -> JSONResponse:
    return error_response(
        503,
        "the server is reading as many images as it can: try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def add_error_handlers(app: FastAPI) -> None:
    """Every error the app raises answered as JSON ``{"error": ...}`` with its status."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(ImageError)
    async def image_error(request: Request, exc: ImageError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return error_response(400, "the client went away before the request was answered")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(exc))

    @app.exception_handler(Saturated)
    async def busy(request: Request, exc: Saturated) -> JSONResponse:
        return busy_response()

    @app.exception_handler(TooManyUploads)
    async def too_many_uploads(request: Request, exc: TooManyUploads) -> JSONResponse:
        return error_response(429, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(Exception)  # a bug; Starlette logs it with its traceback
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # Answered outside all middleware, so the security headers are added here.
        return error_response(500, "the server failed to handle this request", PAGE_HEADERS)


def add_middleware(app: FastAPI, settings: ServeSettings, policies: dict[str, str]) -> None:
    """Outermost last: security headers on everything (the Content Security Policy of a path
    in ``policies``, else the page's), JSON errors, the Host check, the refusal of writes from
    other sites' pages, the body limit."""
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CrossSiteWrites)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(JsonErrors)
    app.add_middleware(SecurityHeaders, policies=policies)


def api_docs(app: FastAPI) -> tuple[bytes, str]:
    """The API docs page, Swagger UI from the package's own files (no CDN, so it works
    offline), and its Content Security Policy: the page's, with the hash of the docs page's one
    inline script (the one that starts Swagger UI)."""
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title}: API",
        swagger_js_url="/static/swagger/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger/swagger-ui.css",
        swagger_favicon_url="/favicon.ico",
    ).body
    scripts = re.findall(rb"<script>(.*?)</script>", page, re.DOTALL)
    hashes = [base64.b64encode(hashlib.sha256(script).digest()).decode() for script in scripts]
    allowed = " ".join(f"'sha256-{digest}'" for digest in hashes)
    return page, PAGE_POLICY.replace("script-src 'self'", f"script-src 'self' {allowed}")


def create_app(
    recognizer: Recognizer | None = None, settings: ServeSettings | None = None
) -> FastAPI:
    """The service; loads ``settings.model`` at start-up unless a ready ``recognizer`` is given."""
    settings = settings or ServeSettings()
    capacity = ReadCapacity(settings.concurrent_reads, settings.queued_reads)
    uploads = UploadsPerClient(settings.uploads_per_client)
    collection = Collection.of(settings)

    async def arrived(request: Request, read: Callable[[Request], Awaitable[T]]) -> T:
        """``read(request)``, the body read and parsed, once all of it has arrived (within the
        time limit, and the client's share of bodies arriving at once); only then may the
        request take a place for a read. A worker with none free refuses before the body."""
        if capacity.saturated:
            raise Saturated
        with uploads.receiving(client_address(request)):
            return await within(settings.body_timeout, read(request))

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
        docs_url=None,  # served below, from the package's own files
        redoc_url=None,
    )
    app.state.recognizer = recognizer
    app.state.settings = settings
    app.state.capacity = capacity
    app.state.uploads = uploads
    docs_page, docs_policy = api_docs(app)
    add_middleware(app, settings, {DOCS_URL: docs_policy})
    add_error_handlers(app)

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
        single: Single = False,
        top_k: Annotated[int, Query(ge=1, le=10, description="labels listed per digit")] = 3,
        reader: Reader = DEFAULT_READER,
    ) -> dict[str, Any]:
        options = request_options(recognizer, settings, single, reader, top_k)
        data = await arrived(request, image_bytes)
        with capacity.admit():
            return await capacity.run(
                recognize_bytes, recognizer, data, options, departure=partial(departure, request)
            )

    @app.post(
        "/api/v1/corrections",
        status_code=201,
        response_model=CorrectionReceipt,
        responses=CORRECTION_RESPONSES,
        openapi_extra=CORRECTION_BODY,
        summary="Store the digits an image really shows, to train on (digitrec serve --collect)",
    )
    async def correct(
        request: Request,
        recognizer: Annotated[Recognizer, Depends(get_recognizer)],
        single: Single = False,
        reader: Reader = DEFAULT_READER,
    ) -> dict[str, Any]:
        if collection is None:
            raise HTTPException(
                404, "this service does not collect corrections (digitrec serve --collect DIR)"
            )
        options = request_options(recognizer, settings, single, reader, top_k=1)
        data, digits = await arrived(request, correction_form)
        with capacity.admit():
            return await capacity.run(
                store_correction,
                collection,
                recognizer,
                data,
                digits,
                options,
                departure=partial(departure, request),
            )

    @app.get("/api/v1/config", response_model=ServiceConfig, summary="What this service does")
    async def config() -> ServiceConfig:
        return ServiceConfig(corrections=collection is not None)

    @app.get(
        "/api/v1/model",
        response_model=ModelCard,
        responses={503: ERROR_RESPONSES[503]},
        summary="What reads the images: the classifier, the page reader, how they were made",
    )
    async def model_card(
        recognizer: Annotated[Recognizer, Depends(get_recognizer)],
    ) -> ModelCard:
        return model_card_of(recognizer)

    @app.get("/healthz", response_model=Status, summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Status,
        responses={503: ERROR_RESPONSES[503]},
        dependencies=[Depends(get_recognizer)],
        summary="Readiness: the model is loaded and the worker can take another image",
    )
    async def readyz() -> Any:
        return busy_response() if capacity.saturated else {"status": "ready"}

    @app.get("/", include_in_schema=False)
    async def drawing_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(docs_page)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.ico")

    app.mount("/static/swagger", StaticFiles(directory=SWAGGER_DIR), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes; settings come from ``$DIGITREC_SERVE_SETTINGS``."""
    return create_app(settings=ServeSettings.from_env())
