"""The drawing page in a real browser: MNIST test digits traced with the mouse are read back;
photos and pages picked as files are shown with the boxes of their lines and digits, their
reading line by line and their cards grouped by line, at desktop and phone sizes; corrections
sent from the page are stored where the server collects them; the API docs need nothing from
outside.

Drives Debian's chromium (``/usr/bin/chromium``) with Playwright against the app on uvicorn with
the packaged default models. Screenshots are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from live_server import serving
from PIL import Image
from serve_support import (
    PHOTO,
    TWO_LINES,
    default_recognizer,
    drawn_ones,
    number_png,
    page_png,
)

from digitrec.serve.app import ServeSettings, create_app

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCALE = 6  # screen pixels per MNIST pixel
INK = 100  # MNIST pixels at least this bright are traced
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
SIZES = {"desktop": DESKTOP, "phone": PHONE}
LONG_NUMBER = "4096172530318845"  # one line wider than a phone at the reading's font size

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]
playwright_sync = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip)")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(create_app(default_recognizer())) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def ink_runs(digit: np.ndarray) -> list[tuple[int, int, int]]:
    """The digit as horizontal strokes: (row, first column, last column) of each run of ink."""
    runs = []
    for row, pixels in enumerate(digit >= INK):
        padded = np.concatenate([[False], pixels, [False]]).astype(np.int8)
        starts = np.flatnonzero(np.diff(padded) == 1)
        ends = np.flatnonzero(np.diff(padded) == -1) - 1
        runs += [(row, int(a), int(b)) for a, b in zip(starts, ends, strict=True)]
    return runs


def trace(page, digit: np.ndarray, left: float, top: float) -> None:
    """Draw ``digit`` with the mouse, one short stroke per run of ink, scaled by ``SCALE``."""
    for row, first, last in ink_runs(digit):
        y = top + (row + 0.5) * SCALE
        page.mouse.move(left + (first + 0.5) * SCALE, y)
        page.mouse.down()
        page.mouse.move(left + (last + 0.5) * SCALE, y, steps=2)
        page.mouse.up()


def draw_number(page, digits: np.ndarray) -> None:
    """Trace the digits side by side on the pad, 28 MNIST pixels apart, centred vertically."""
    box = page.get_by_test_id("pad").bounding_box()
    width = 28 * SCALE * len(digits)
    assert width <= box["width"] and box["height"] >= 28 * SCALE, "the pad is too small"
    left = box["x"] + (box["width"] - width) / 2
    top = box["y"] + (box["height"] - 28 * SCALE) / 2
    for i, digit in enumerate(digits):
        trace(page, digit, left + i * 28 * SCALE, top)


def draw_ones(page, count: int) -> None:
    """Draw ``count`` upright ones on the pad with the mouse, as a number (no MNIST needed)."""
    box = page.get_by_test_id("pad").bounding_box()
    height = 0.6 * box["height"]
    top = box["y"] + 0.2 * box["height"]
    left = box["x"] + box["width"] / 2 - 0.4 * height * (count - 1) / 2
    for i in range(count):
        x = left + 0.4 * height * i
        page.mouse.move(x, top)
        page.mouse.down()
        page.mouse.move(x, top + height, steps=8)
        page.mouse.up()


def expect_result(page, text: str) -> None:
    """Wait for the answer to the latest drawing (not one sent while drawing), then check it."""
    result = page.get_by_test_id("result")
    playwright_sync.expect(result).to_have_attribute("aria-busy", "false", timeout=15_000)
    playwright_sync.expect(result).to_have_text(text, timeout=1)


def expect_read(page, text: str) -> None:
    """Wait for an image file's reading to show ``text`` (one answer per file: no drawing)."""
    result = page.get_by_test_id("result")
    playwright_sync.expect(result).to_have_text(text, timeout=15_000)
    playwright_sync.expect(result).to_have_attribute("aria-busy", "false")


def open_page(browser, server: str, **context_options):
    """The drawing page, under the service's Content Security Policy; ``page.refused`` lists
    what the browser refused by that policy (nothing, if the page keeps working), and
    ``page.failures`` the script errors."""
    page = browser.new_context(**context_options).new_page()
    page.refused = []
    page.failures = []
    page.on("console", lambda message: note_refusal(page.refused, message.text))
    page.on("pageerror", lambda error: page.failures.append(str(error)))
    response = page.goto(server)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    width = page.get_by_label("Stroke width")
    width.fill(str(SCALE + 2))
    width.blur()
    return page


def note_refusal(refused: list[str], text: str) -> None:
    if "Content Security Policy" in text:
        refused.append(text)


def first_of_each(mnist, labels: list[int]) -> tuple[np.ndarray, str]:
    """The first MNIST test image of each label, and the number they spell."""
    picks = [int(np.flatnonzero(mnist.test_labels == label)[0]) for label in labels]
    return mnist.test_images[picks], "".join(str(label) for label in labels)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def test_a_traced_digit_and_a_traced_number_are_read_on_the_page(browser, server, mnist):
    page = open_page(browser, server, **DESKTOP)
    digit, text = first_of_each(mnist, [7])
    draw_number(page, digit)
    expect_result(page, text)
    assert page.locator(".digit .crop").count() == 1
    assert page.locator(".digit .bar-row").count() == 3

    page.get_by_test_id("clear").click()
    expect_result(page, "")
    digits, text = first_of_each(mnist, [4, 0, 9])
    draw_number(page, digits)
    expect_result(page, text)
    assert page.locator(".digit .crop").count() == 3
    assert page.locator("#boxes .digit-box").count() == 3
    screenshot(page, "drawing-page-desktop")

    page.get_by_role("button", name="Undo").click()  # the last stroke of the 9
    page.get_by_role("button", name="Undo").click()
    playwright_sync.expect(page.get_by_test_id("result")).not_to_have_text("", timeout=15_000)
    assert page.refused == []
    assert page.failures == []


def file_of(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "image/png", "buffer": data}


def test_image_files_picked_or_dropped_on_the_page_are_read(browser, server):
    page = open_page(browser, server, **DESKTOP)
    picked, dropped = number_png("258"), number_png("61", seed=1)
    page.get_by_label("Read an image file").set_input_files(file_of("number.png", picked))
    expect_read(page, read_by_the_api(server, picked)["text"])

    transfer = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
            return transfer;
        }""",
        base64.b64encode(dropped).decode(),
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    expect_read(page, read_by_the_api(server, dropped)["text"])
    playwright_sync.expect(page.get_by_test_id("correction")).to_be_hidden()  # not collecting
    assert page.refused == []
    assert page.failures == []


def read_by_the_api(server: str, image: bytes) -> dict:
    response = httpx.post(f"{server}/api/v1/recognize", files={"image": ("x.png", image)})
    response.raise_for_status()
    return response.json()


# Each line of the reading on one row: its text in one box of one line's height.
ONE_ROW_EACH = """(selector) => [...document.querySelectorAll(selector)].map((element) => {
    const range = document.createRange();
    range.selectNodeContents(element);
    const lineHeight = parseFloat(getComputedStyle(element).lineHeight);
    return {
        text: element.textContent,
        rows: range.getClientRects().length,
        oneRow: element.getBoundingClientRect().height < 1.5 * lineHeight,
    };
})"""


def box_centre(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


@pytest.mark.parametrize("size", SIZES)
def test_a_page_is_shown_with_its_boxes_its_lines_grouped_and_no_number_broken(
    browser, server, size
):
    """A cheque photo's number wrapped mid-number, its 19 cards came in one flat list without
    thumbnails for the page reader's digits, and nothing showed where each digit was read."""
    page = open_page(browser, server, **SIZES[size])
    image = page_png(*TWO_LINES)
    reading = read_by_the_api(server, image)
    assert len(reading["lines"]) >= 2, "the default models should read two lines here"
    page.get_by_label("Read an image file").set_input_files(file_of("page.png", image))
    expect_read(page, "".join(line["text"] for line in reading["lines"]))

    digit_boxes = page.locator("#boxes .digit-box")
    assert digit_boxes.count() == len(reading["digits"])
    assert page.locator("#boxes .line-box").count() == len(reading["lines"])
    pad = page.get_by_test_id("pad").bounding_box()
    for k in range(digit_boxes.count()):
        box = digit_boxes.nth(k).bounding_box()
        assert pad["x"] <= box["x"] and box["x"] + box["width"] <= pad["x"] + pad["width"]
        assert pad["y"] <= box["y"] and box["y"] + box["height"] <= pad["y"] + pad["height"]

    groups = page.locator(".line-group")
    assert groups.count() == len(reading["lines"])
    for k, line in enumerate(reading["lines"]):
        assert groups.nth(k).locator(".digit").count() == len(line["digits"])
        assert groups.nth(k).locator(".digit canvas.crop").count() == len(line["digits"])
    for selector in (".result-line", ".line-text"):
        rows = page.evaluate(ONE_ROW_EACH, selector)
        assert [row["text"] for row in rows] == [line["text"] for line in reading["lines"]]
        assert all(row["rows"] == 1 and row["oneRow"] for row in rows), rows

    # The lines' cards start closed over 12 digits in all; a line's summary opens and closes
    # them. Hovering a card marks its box; hovering or tapping a box marks its card (and draws
    # nothing).
    first_card = page.locator(".line-group .digit").first
    opened = len(reading["digits"]) <= 12
    assert first_card.is_visible() == opened
    groups.first.locator("summary").click()
    assert first_card.is_visible() != opened
    if opened:
        groups.first.locator("summary").click()
    first_card.hover()
    playwright_sync.expect(digit_boxes.first).to_have_class("digit-box marked")
    x, y = box_centre(page, '#boxes .digit-box[data-digit="1"]')
    if size == "phone":
        page.touchscreen.tap(x, y)
    else:
        page.mouse.click(x, y)
    playwright_sync.expect(page.locator('.digit[data-digit="1"]')).to_have_class("digit marked")
    assert page.get_by_test_id("result").get_attribute("aria-busy") == "false"
    assert digit_boxes.count() == len(reading["digits"])  # the tap was not read as a stroke
    screenshot(page, f"page-read-{size}")
    assert page.evaluate("document.documentElement.scrollWidth") <= SIZES[size]["viewport"]["width"]

    # A long number is made to fit, never broken across rows.
    page.get_by_label("Read an image file").set_input_files(
        file_of("long.png", number_png(LONG_NUMBER))
    )
    long = read_by_the_api(server, number_png(LONG_NUMBER))
    expect_read(page, long["text"])
    rows = page.evaluate(ONE_ROW_EACH, ".result-line")
    assert [row["rows"] for row in rows] == [1] and rows[0]["oneRow"], rows
    assert page.evaluate("document.documentElement.scrollWidth") <= SIZES[size]["viewport"]["width"]
    assert page.refused == []
    assert page.failures == []


def test_a_failed_read_clears_the_reading_and_the_image_before_it(browser, server):
    """A file that could not be read left the previous reading and image on the page."""
    page = open_page(browser, server, **PHONE)
    page.get_by_label("Read an image file").set_input_files(file_of("page.png", page_png(*PHOTO)))
    playwright_sync.expect(page.locator("#boxes .digit-box").first).to_be_attached(timeout=15_000)
    page.get_by_label("Read an image file").set_input_files(file_of("broken.png", b"not a PNG"))
    status = page.locator("#status")
    playwright_sync.expect(status).to_contain_text("Could not read the image", timeout=15_000)
    expect_result(page, "")
    assert page.locator("#boxes rect").count() == 0
    assert page.locator(".line-group").count() == 0
    blank = page.evaluate(
        """() => {
            const pad = document.getElementById("pad");
            const pixels = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
            return pixels.every((value) => value === 255);
        }"""
    )
    assert blank, "the previous image is still on the pad"
    assert page.failures == []


def test_the_api_docs_load_with_nothing_from_outside_and_the_favicon_is_served(browser, server):
    """/docs was blank offline: Swagger UI came from a CDN. /favicon.ico was 404."""
    context = browser.new_context(**DESKTOP)
    outside: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: note_refusal(refused, message.text))
    page.goto(f"{server}/docs")
    operations = page.locator(".swagger-ui .opblock-summary-path")
    playwright_sync.expect(operations.first).to_be_visible(timeout=15_000)
    paths = operations.all_inner_texts()
    assert {"/api/v1/recognize", "/api/v1/corrections", "/api/v1/model"} <= set(paths)
    page.locator(".swagger-ui .opblock-summary", has_text="/api/v1/model").click()
    playwright_sync.expect(page.locator(".swagger-ui .opblock-body").first).to_be_visible()
    screenshot(page, "api-docs")
    favicon = page.request.get(f"{server}/favicon.ico")
    assert favicon.status == 200
    assert Image.open(io.BytesIO(favicon.body())).format == "ICO"
    assert outside == []
    assert refused == []
    context.close()


def stored_layout(folder: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The collection's digits (their class folders) and its lines' rows (file, text)."""
    digits = sorted(path.parent.name for path in folder.glob("[0-9]/*.png"))
    labels = folder / "lines" / "labels.csv"
    if not labels.exists():
        return digits, []
    with labels.open(newline="") as file:
        _, *rows = csv.reader(file)
    for name, _ in rows:
        assert (folder / "lines" / name).is_file()
    return digits, [tuple(row) for row in rows]


def correct(page, text: str | None = None) -> str:
    """Send the correction form, as prefilled or with ``text``; the page's answer to it (once
    the server's has come: the status says "Sending…" from the click until then)."""
    field = page.get_by_label("Wrong? Type the right digits")
    if text is not None:
        field.fill(text)
    with page.expect_response(lambda response: "/api/v1/corrections" in response.url):
        page.get_by_role("button", name="Correct it").click()
    status = page.locator("#correction-status")
    answered = re.compile("Thank you|Not stored")
    playwright_sync.expect(status).to_have_text(answered, timeout=15_000)
    return status.inner_text()


def a_digit_more(text: str) -> str:
    return text.replace("?", "0") + "7"


IMAGES = {
    "a photo": lambda page: page.get_by_label("Read an image file").set_input_files(
        file_of("photo.png", page_png(*PHOTO))
    ),
    "a two-line page": lambda page: page.get_by_label("Read an image file").set_input_files(
        file_of("page.png", page_png(*TWO_LINES))
    ),
    "a drawn number": lambda page: draw_ones(page, 3),
}


@pytest.mark.parametrize("name", IMAGES)
def test_a_reading_corrected_on_the_page_as_prefilled_and_changed_is_stored(
    browser, tmp_path, name
):
    """The prefilled text sent back unchanged was refused on photos and pages ("image has 1
    digit but the correction gives 5"), and so was a digit more or less."""
    settings = ServeSettings(collect_dir=str(tmp_path))
    with serving(create_app(default_recognizer(), settings)) as url:
        page = open_page(browser, url, **DESKTOP)
        IMAGES[name](page)
        result = page.get_by_test_id("result")
        playwright_sync.expect(result).to_have_attribute("aria-busy", "false", timeout=15_000)
        playwright_sync.expect(result).not_to_have_text("", timeout=15_000)
        lines = page.locator(".result-line").all_inner_texts()
        field = page.get_by_label("Wrong? Type the right digits")
        playwright_sync.expect(field).to_have_value("\n".join(lines))
        prefilled = field.input_value()
        if "?" in prefilled:
            prefilled = prefilled.replace("?", "0")
            field.fill(prefilled)
        answer = correct(page)
        digits, rows = stored_layout(tmp_path)
        read_digits = Counter("".join(prefilled.split()))
        by_page_reader = name != "a drawn number"
        if by_page_reader:  # every line, and the digits the classifier finds a piece of ink for
            assert [text for _, text in rows] == prefilled.split("\n")
            assert Counter(digits) <= read_digits
        else:  # the classifier's digits, each in its class folder
            assert (Counter(digits), rows) == (read_digits, [])
        assert (
            answer
            == "Thank you: "
            + " and ".join(
                f"{count} {noun}{'' if count == 1 else 's'}"
                for count, noun in ((len(digits), "digit"), (len(rows), "line"))
                if count
            )
            + " stored to train on."
        )

        changed = a_digit_more(prefilled)
        answer = correct(page, changed)
        assert answer.startswith("Thank you:") and "line" in answer, answer
        _, rows_after = stored_layout(tmp_path)
        new_rows = [text for _, text in rows_after[len(rows) :]]
        expected = changed.split("\n") if by_page_reader else changed.split("\n")[-1:]
        assert new_rows == expected
        screenshot(page, f"correction-{name.replace(' ', '-')}")
        assert page.refused == []
        assert page.failures == []


def test_a_correction_of_another_number_of_lines_is_refused_with_what_to_do(browser, tmp_path):
    settings = ServeSettings(collect_dir=str(tmp_path))
    with serving(create_app(default_recognizer(), settings)) as url:
        page = open_page(browser, url, **DESKTOP)
        page.get_by_label("Read an image file").set_input_files(file_of("ones.png", drawn_ones(2)))
        expect_read(page, "11")
        answer = correct(page, "1\n1")
        assert answer.startswith("Not stored: the image was read as 1 line"), answer
        assert "line by line" in answer
        page.get_by_label("Wrong? Type the right digits").fill("1?")
        page.get_by_role("button", name="Correct it").click()
        status = page.locator("#correction-status")
        playwright_sync.expect(status).to_contain_text("replace each ? with the digit it is")
    assert list(tmp_path.iterdir()) == []


def test_the_page_is_usable_on_a_phone_and_by_keyboard(browser, server, mnist):
    page = open_page(browser, server, **PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    digits, text = first_of_each(mnist, [3, 6])
    draw_number(page, digits)
    expect_result(page, text)
    screenshot(page, "drawing-page-phone")

    page.keyboard.press("Escape")
    expect_result(page, "")

    page.reload()
    focused = []
    for _ in range(5):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
    assert focused == ["pad", "undo", "clear", "stroke-width", "file"]
    assert page.refused == []
