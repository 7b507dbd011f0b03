"""The web service's API: every endpoint and its errors, the reading's one definition and the
model card. Hosts, security headers and broken requests are in test_serve_hardening.py, limits
in test_serve_limits.py, the command in test_serve_cli.py."""

from __future__ import annotations

import base64
import getpass
import io
import json
import re
import socket
from dataclasses import dataclass, field, fields

import numpy as np
import pytest
from PIL import Image
from pydantic import create_model
from serve_support import PNG, RECOGNIZE, default_recognizer, drawn_ones, local_client, png_bytes

from digitrec.cli import main
from digitrec.read.classifier import Classifier
from digitrec.read.options import ReadOptions
from digitrec.read.recognizer import Recognizer
from digitrec.read.results import Digit, Reading, rounded
from digitrec.serve.app import STATIC_DIR, ServeSettings, create_app
from digitrec.serve.schemas import api_fields


def mnist_as_drawn(digits: np.ndarray, scale: int = 4) -> bytes:
    """MNIST test digits side by side, enlarged, dark ink on white: a user's image of a number."""
    row = np.concatenate([np.pad(d, ((4, 4), (4, 4))) for d in digits], axis=1)
    image = Image.fromarray(255 - row).resize((row.shape[1] * scale, row.shape[0] * scale))
    return png_bytes(image)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return default_recognizer()


@pytest.fixture(scope="module")
def client(recognizer: Recognizer):
    with local_client(create_app(recognizer)) as client:
        yield client


def small_limits_client(recognizer: Recognizer, **limits):
    return local_client(create_app(recognizer, ServeSettings(**limits)))


# --- recognition -------------------------------------------------------------------------------


def test_recognize_answers_the_reading_of_the_recognizer_plus_normalized_images(client, recognizer):
    image = drawn_ones(2)
    response = client.post(RECOGNIZE, files={"image": ("ones.png", image, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    reading = recognizer.read(image)
    assert {k: v for k, v in body.items() if k != "normalized"} == json.loads(
        json.dumps({**rounded(reading.to_dict()), "error": None})
    )
    assert len(body["digits"]) == 2
    assert body["text"] == "11"
    for encoded, expected in zip(body["normalized"], reading.normalized, strict=True):
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
        assert decoded.shape == (28, 28)
        assert np.abs(decoded / 255.0 - expected).max() <= 1 / 255 + 1e-6


def test_recognize_accepts_the_raw_body_with_an_image_content_type(client):
    image = drawn_ones(1)
    raw = client.post(RECOGNIZE, content=image, headers=PNG)
    form = client.post(RECOGNIZE, files={"image": ("one.png", image, "image/png")})
    assert raw.status_code == 200, raw.text
    assert raw.json() == form.json()


def test_recognize_reads_mnist_digits_and_numbers_drawn_as_dark_ink_on_white(client, mnist):
    labels, images = mnist.test_labels, mnist.test_images
    picks = [int(np.flatnonzero(labels == d)[0]) for d in (3, 8, 5)]
    single = client.post(RECOGNIZE, content=mnist_as_drawn(images[picks[:1]]), headers=PNG).json()
    assert single["text"] == "3"
    number = client.post(RECOGNIZE, content=mnist_as_drawn(images[picks]), headers=PNG).json()
    assert number["text"] == "385"
    assert [d["box"][0] for d in number["digits"]] == sorted(d["box"][0] for d in number["digits"])


def test_single_reads_the_whole_image_as_one_digit_and_top_k_sets_the_list_length(client):
    image = drawn_ones(3)
    body = client.post(
        RECOGNIZE,
        params={"single": "true", "top_k": 5},
        content=image,
        headers=PNG,
    ).json()
    assert len(body["digits"]) == 1
    assert len(body["normalized"]) == 1
    assert len(body["digits"][0]["top"]) == 5


def test_a_blank_image_reads_as_no_digits(client):
    blank = png_bytes(np.full((100, 100), 255, np.uint8))
    body = client.post(RECOGNIZE, content=blank, headers=PNG).json()
    assert body == {"text": "", "digits": [], "lines": [], "error": None, "normalized": []}


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{"top_k": 0}, {"top_k": 11}, {"top_k": "three"}, {"single": "maybe"}],
    ids=["top_k=0", "top_k=11", "top_k=text", "single=maybe"],
)
def test_bad_query_values_are_422_naming_the_parameter(client, params):
    response = client.post(RECOGNIZE, params=params, content=drawn_ones(), headers=PNG)
    assert response.status_code == 422
    assert next(iter(params)) in response.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "text/plain"}, {"content-type": "application/json"}, {}],
    ids=["text", "json", "none"],
)
def test_a_body_that_is_not_an_image_is_415(client, headers):
    response = client.post(RECOGNIZE, content=b"hello", headers=headers)
    assert response.status_code == 415
    assert "image" in response.json()["error"]


def test_a_form_file_that_is_not_an_image_is_415(client):
    response = client.post(RECOGNIZE, files={"image": ("notes.txt", b"hello", "text/plain")})
    assert response.status_code == 415
    assert "text/plain" in response.json()["error"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a picture", "not an image"),
        (b"", "empty"),
        (drawn_ones()[:60], "truncated"),
    ],
    ids=["text", "empty", "truncated"],
)
def test_undecodable_images_are_422_with_the_reason(client, content, message):
    response = client.post(RECOGNIZE, content=content, headers=PNG)
    assert response.status_code == 422
    assert message in response.json()["error"].lower()


def test_a_form_without_the_image_field_is_422(client):
    response = client.post(RECOGNIZE, files={"picture": ("one.png", drawn_ones(), "image/png")})
    assert response.status_code == 422
    assert "'image'" in response.json()["error"]


def test_an_image_over_the_pixel_limit_is_422(recognizer):
    with small_limits_client(recognizer, max_pixels=10_000) as client:
        image = png_bytes(np.full((200, 200), 255, np.uint8))
        response = client.post(RECOGNIZE, content=image, headers=PNG)
    assert response.status_code == 422
    assert "limit" in response.json()["error"]


def test_a_request_is_read_with_its_query_options_and_the_pixel_limit_as_one_value(
    recognizer, monkeypatch
):
    """The service hands the recognizer one ``ReadOptions``, as predict and batch reading do."""
    seen = []
    read = recognizer.read
    monkeypatch.setattr(
        recognizer, "read", lambda image, **kw: seen.append(kw) or read(image, **kw)
    )
    with small_limits_client(recognizer, max_pixels=1_000_000) as client:
        params = {"single": "true", "top_k": 2, "reader": "digits"}
        response = client.post(RECOGNIZE, params=params, content=drawn_ones(), headers=PNG)
    assert response.status_code == 200, response.text
    assert seen == [{"options": ReadOptions(True, 2, 1_000_000, "digits")}]


def test_a_body_declared_over_the_limit_is_413_without_being_read(recognizer):
    with small_limits_client(recognizer, max_body_bytes=1000) as client:
        image = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
        assert len(image) > 1000
        raw = client.post(RECOGNIZE, content=image, headers=PNG)
        form = client.post(RECOGNIZE, files={"image": ("big.png", image, "image/png")})
    for response in (raw, form):
        assert response.status_code == 413
        assert "limit" in response.json()["error"]


def test_unknown_paths_are_404_as_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


# --- model, health, docs, page -----------------------------------------------------------------


def test_model_card_describes_the_served_model(client, recognizer):
    response = client.get("/api/v1/model")
    assert response.status_code == 200
    card = response.json()
    metadata = recognizer.metadata
    assert card["name"] == metadata["model_name"]
    assert card["version"] == metadata["digitrec_version"]
    assert card["dataset"] == "mnist + cvl"  # the default learned from MNIST and CVL train
    assert card["classes"] == [str(d) for d in range(10)]
    assert card["test_accuracy"] == metadata["test_accuracy"]
    assert card["threshold"] == recognizer.threshold
    assert card["temperature"] == recognizer.temperature
    assert card["training"] == metadata["training_config"]
    assert card["calibration"] == metadata["calibration"]
    assert card["classifier"] == "default model (default.onnx)"
    assert card["page_reader"] == "default line model (lines.onnx)"
    assert card["crop_reader"] == "documents line model (documents.onnx)"


def test_the_model_card_names_the_models_by_their_files_and_says_when_there_is_no_page_reader(
    recognizer,
):
    """What read an image was not visible: the card named neither the classifier nor the page
    reader."""
    run = f"/home/{getpass.getuser()}/runs/mine"
    session = recognizer.classifier.session
    named = Recognizer(
        Classifier(session, recognizer.metadata, f"{run}/model.onnx"), recognizer.pages
    )
    alone = Recognizer(Classifier(session, recognizer.metadata, "C:\\models\\mine.onnx"))
    with local_client(create_app(named)) as client:
        card = client.get("/api/v1/model").json()
    assert (card["classifier"], card["page_reader"]) == (
        "model.onnx",
        "default line model (lines.onnx)",
    )
    assert getpass.getuser() not in json.dumps(card)
    with local_client(create_app(alone)) as client:
        card = client.get("/api/v1/model").json()
        pages = client.post(
            RECOGNIZE, content=drawn_ones(), headers=PNG, params={"reader": "pages"}
        )
        auto = client.post(RECOGNIZE, content=drawn_ones(), headers=PNG)
    assert (card["classifier"], card["page_reader"], card["crop_reader"]) == (
        "mine.onnx",
        None,
        None,
    )
    assert pages.status_code == 422
    assert "no page reader (digitrec serve --lines none)" in pages.json()["error"]
    assert auto.json()["text"] == "1"


def strings_in(value) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return [value] if isinstance(value, str) else []


def test_the_model_card_shows_no_path_command_user_or_host_of_the_machines(recognizer):
    """A model exported on someone's machine records where and how it was trained there."""
    user, host = getpass.getuser(), socket.gethostname()
    run_dir = f"/home/{user}/work/runs/lenet5-{host}"
    metadata = {
        **recognizer.metadata,
        "training_run": run_dir,
        "training_command": f"digitrec train --model lenet5 --out {run_dir}",
        "data_checksums": {"train-images": "abc"},
    }
    exported = Recognizer(
        Classifier(recognizer.classifier.session, metadata, f"{run_dir}/model.onnx")
    )
    with local_client(create_app(exported)) as client:
        response = client.get("/api/v1/model")
    assert response.status_code == 200
    assert response.json()["name"] == metadata["model_name"]
    assert user not in response.text
    assert host not in response.text
    assert "digitrec train" not in response.text
    for text in strings_in(response.json()):
        assert not re.search(r"(^|[\s'\"=(])(/|~/|[A-Za-z]:\\)\w", text), text


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_before_the_model_is_loaded_readyz_and_recognize_are_503():
    client = local_client(create_app())  # lifespan not entered: no model yet
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    response = client.post(RECOGNIZE, content=drawn_ones(), headers=PNG)
    assert response.status_code == 503
    assert "not loaded" in response.json()["error"]


def test_the_model_is_loaded_once_at_start_up_and_released_at_shutdown(monkeypatch):
    loads = []
    real_load = Recognizer.load

    def counting_load(*args, **kwargs):
        loads.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(Recognizer, "load", counting_load)
    app = create_app(settings=ServeSettings(model="default"))
    with local_client(app) as client:
        for _ in range(3):
            response = client.post(RECOGNIZE, content=drawn_ones(), headers=PNG)
            assert response.status_code == 200
    assert len(loads) == 1
    assert app.state.recognizer is None


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/openapi.json").json()
    assert {"/api/v1/recognize", "/api/v1/model", "/healthz", "/readyz"} <= set(schema["paths"])
    body = schema["paths"]["/api/v1/recognize"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert "image/png" in body


def test_the_api_docs_and_the_favicon_are_served_from_the_package(client):
    """/docs was blank offline (Swagger UI came from a CDN), and /favicon.ico was 404."""
    docs = client.get("/docs")
    assert docs.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert sorted(sources) == [
        "/favicon.ico",
        "/static/swagger/swagger-ui-bundle.js",
        "/static/swagger/swagger-ui.css",
    ]
    for source in sources:
        response = client.get(source)
        assert response.status_code == 200, source
        assert len(response.content) > 1000
    assert (
        client.get("/static/swagger/swagger-ui-bundle.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    favicon = client.get("/favicon.ico")
    assert Image.open(io.BytesIO(favicon.content)).format == "ICO"
    assert client.get("/redoc").status_code == 404  # ReDoc loads from a CDN: not offered


def test_the_drawing_page_is_served_with_its_test_hooks_and_no_outside_resources(client):
    page = client.get("/")
    assert page.status_code == 200
    for hook in ('data-testid="pad"', 'data-testid="result"', 'data-testid="clear"'):
        assert hook in page.text
    for name in ("app.js", "style.css", "favicon.svg"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC_DIR.iterdir():
        if path.suffix == ".ico":
            continue
        text = path.read_text().replace("http://www.w3.org/2000/svg", "")  # a name, not a URL
        assert "http://" not in text
        assert "https://" not in text
        assert "//cdn" not in text


# --- one definition of a reading ---------------------------------------------------------------


def test_every_field_of_a_reading_and_a_digit_is_in_the_api_schema_and_response(client):
    components = client.get("/openapi.json").json()["components"]["schemas"]
    for record, name in ((Reading, "Recognition"), (Digit, "Digit")):
        properties = components[name]["properties"]
        for item in fields(record):
            assert properties[item.name]["description"].startswith(item.metadata["description"])
    body = client.post(RECOGNIZE, content=drawn_ones(2), headers=PNG).json()
    assert {item.name for item in fields(Reading)} | {"error"} == set(body)
    for digit in body["digits"]:
        assert {item.name for item in fields(Digit)} == set(digit)


def test_predict_json_the_python_api_and_the_web_api_give_the_same_reading(
    client, recognizer, tmp_path, capsys
):
    image = drawn_ones(2)
    (tmp_path / "ones.png").write_bytes(image)
    assert main(["predict", "--json", str(tmp_path / "ones.png")]) == 0
    line = json.loads(capsys.readouterr().out)
    api = client.post(RECOGNIZE, content=image, headers=PNG).json()
    python = json.loads(json.dumps(rounded(recognizer.read(image).to_dict())))
    assert line.pop("file") == str(tmp_path / "ones.png")
    assert line.pop("model") == recognizer.describe()
    assert api.pop("normalized")
    assert line == api == {**python, "error": None}


@dataclass
class Line:
    text: str = field(metadata={"description": "the line's text"})
    box: tuple[int, int, int, int] = field(metadata={"description": "where it is"})
    digits: list[Digit] = field(metadata={"description": "its digits"})


@dataclass
class PageReading(Reading):
    """A reading with one more field, as a page reading's lines will be added."""

    lines: list[Line] = field(default_factory=list, metadata={"description": "each line"})


def test_a_field_added_to_a_reading_reaches_to_dict_and_the_api_schema_with_no_other_edit():
    digit = Digit(7, 0.9, (1, 2, 3, 4), [(7, 0.9), (1, 0.1)])
    page = PageReading("7", [digit], [np.zeros((28, 28))], [Line("7", (0, 0, 9, 9), [digit])])
    assert page.to_dict() == {
        "text": "7",
        "digits": [digit.to_dict()],
        "lines": [{"text": "7", "box": [0, 0, 9, 9], "digits": [digit.to_dict()]}],
    }
    schema = create_model("PageRecognition", **api_fields(PageReading)).model_json_schema()
    assert schema["properties"]["lines"]["description"] == "each line"
    assert set(schema["$defs"]["Line"]["properties"]) == {"text", "box", "digits"}
    assert schema["properties"]["normalized"]["items"] == {"type": "string"}
