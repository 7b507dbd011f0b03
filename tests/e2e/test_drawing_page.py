"""The drawing page in a real browser: MNIST test digits traced with the mouse are read back,
and a correction sent from it is stored where the server collects them.

Drives Debian's chromium (``/usr/bin/chromium``) with Playwright against the app on uvicorn with
the packaged default model. Screenshots are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from live_server import serving
from PIL import Image
from serve_support import drawn_ones

from digitrec.recognizer import Recognizer
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

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]
playwright_sync = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip)")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(create_app(Recognizer.load("default", threads=1))) as url:
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


def expect_result(page, text: str) -> None:
    """Wait for the answer to the latest drawing (not one sent while drawing), then check it."""
    result = page.get_by_test_id("result")
    playwright_sync.expect(result).to_have_attribute("aria-busy", "false", timeout=15_000)
    playwright_sync.expect(result).to_have_text(text, timeout=1)


def open_page(browser, server: str, **context_options):
    """The drawing page, under the service's Content Security Policy; ``page.refused`` lists
    what the browser refused by that policy (nothing, if the page keeps working)."""
    page = browser.new_context(**context_options).new_page()
    page.refused = []
    page.on("console", lambda message: note_refusal(page.refused, message.text))
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


def test_a_traced_digit_and_a_traced_number_are_read_on_the_page(browser, server, mnist):
    page = open_page(browser, server, viewport={"width": 1280, "height": 800})
    digit, text = first_of_each(mnist, [7])
    draw_number(page, digit)
    expect_result(page, text)
    assert page.locator(".digit img").count() == 1
    assert page.locator(".digit .bar-row").count() == 3

    page.get_by_test_id("clear").click()
    expect_result(page, "")
    digits, text = first_of_each(mnist, [4, 0, 9])
    draw_number(page, digits)
    expect_result(page, text)
    assert page.locator(".digit img").count() == 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "drawing-page-desktop.png", full_page=True)

    page.get_by_role("button", name="Undo").click()  # the last stroke of the 9
    page.get_by_role("button", name="Undo").click()
    playwright_sync.expect(page.get_by_test_id("result")).not_to_have_text("", timeout=15_000)
    assert page.refused == []


def number_png(digits: np.ndarray) -> bytes:
    """The digits side by side, 3× larger, dark on white, as a PNG file's bytes."""
    image = Image.fromarray(255 - np.concatenate(list(np.pad(digits, ((0, 0), (4, 4), (4, 4)))), 1))
    buffer = io.BytesIO()
    image.resize((image.width * 3, image.height * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_files_picked_or_dropped_on_the_page_are_read(browser, server, mnist):
    page = open_page(browser, server, viewport={"width": 1280, "height": 800})
    digits, text = first_of_each(mnist, [2, 5, 8])
    page.get_by_label("Read an image file").set_input_files(
        {"name": "number.png", "mimeType": "image/png", "buffer": number_png(digits)}
    )
    expect_result(page, text)

    digits, text = first_of_each(mnist, [6, 1])
    dropped = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
            return transfer;
        }""",
        base64.b64encode(number_png(digits)).decode(),
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
    expect_result(page, text)
    playwright_sync.expect(page.get_by_test_id("correction")).to_be_hidden()  # not collecting
    assert page.refused == []


def test_a_correction_sent_from_the_page_is_stored_where_the_server_collects(browser, tmp_path):
    settings = ServeSettings(collect_dir=str(tmp_path))
    with serving(create_app(Recognizer.load("default", threads=1), settings)) as url:
        page = open_page(browser, url, viewport={"width": 1280, "height": 800})
        page.get_by_label("Read an image file").set_input_files(
            {"name": "ones.png", "mimeType": "image/png", "buffer": drawn_ones(2)}
        )
        expect_result(page, "11")
        digits = page.get_by_label("Wrong? Type the right digits")
        playwright_sync.expect(digits).to_have_value("11")
        status = page.locator("#correction-status")
        digits.fill("1")
        page.get_by_role("button", name="Correct it").click()
        playwright_sync.expect(status).to_contain_text("Not stored: the image has 2 digits")
        digits.fill("17")
        page.get_by_role("button", name="Correct it").click()
        playwright_sync.expect(status).to_have_text("Thank you: 2 digits stored to train on.")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "drawing-page-correction.png", full_page=True)
        assert page.refused == []
    assert sorted(path.parent.name for path in tmp_path.rglob("*.png")) == ["1", "7"]


def test_the_page_is_usable_on_a_phone_and_by_keyboard(browser, server, mnist):
    page = open_page(
        browser,
        server,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    digits, text = first_of_each(mnist, [3, 6])
    draw_number(page, digits)
    expect_result(page, text)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "drawing-page-phone.png", full_page=True)

    page.keyboard.press("Escape")
    expect_result(page, "")

    page.reload()
    focused = []
    for _ in range(5):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
    assert focused == ["pad", "undo", "clear", "stroke-width", "file"]
    assert page.refused == []
