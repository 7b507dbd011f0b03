"""Make the README's pictures in docs/images/ with the product itself.

- ``reading.png``: the photographed form and the two-line page of examples/, read by
  ``Recognizer.load("default")``, each digit's box and reading drawn on them;
- ``drawing-page.png``: the drawing page of ``digitrec serve`` (on 127.0.0.1) in Debian's
  Chromium, a number drawn on it with the mouse and read.

    python tools/make_pictures.py            # needs playwright and /usr/bin/chromium
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitrec import Reading, Recognizer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
IMAGES_DIR = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
PANEL_HEIGHT = 480  # pixels of each image in reading.png
PALETTE_COLOURS = 128  # reading.png's palette: the photo's grain would make it large
LINE_COLOUR, DIGIT_COLOUR, LABEL_COLOUR = (40, 110, 230), (230, 70, 30), (255, 255, 255)

# Strokes that write each digit, as points in a box 1 wide and 1 high (x right, y down).
ELLIPSE = [(0.5 + 0.4 * np.sin(t), 0.5 - 0.45 * np.cos(t)) for t in np.linspace(0, 6.4, 24)]
STROKES = {
    "0": [ELLIPSE],
    "2": [
        [
            (0.12, 0.3),
            (0.3, 0.08),
            (0.6, 0.04),
            (0.85, 0.22),
            (0.8, 0.45),
            (0.12, 0.95),
            (0.9, 0.95),
        ]
    ],
    "4": [[(0.6, 0.05), (0.1, 0.65), (0.9, 0.65)], [(0.65, 0.3), (0.65, 0.97)]],
    "7": [[(0.12, 0.08), (0.88, 0.08), (0.4, 0.97)]],
}
DRAWN = "2047"


def annotated(path: Path, reading: Reading) -> Image.Image:
    """The image at ``path``, ``PANEL_HEIGHT`` high, with each line's box, each digit's box and
    the digit read above it."""
    image = Image.open(path).convert("RGB")
    scale = PANEL_HEIGHT / image.height
    image = image.resize((round(image.width * scale), PANEL_HEIGHT), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=18)
    for line in reading.lines:
        draw.rectangle([round(v * scale) for v in line.box], outline=LINE_COLOUR, width=2)
        for digit in line.digits:
            x0, y0, x1, y1 = (round(v * scale) for v in digit.box)
            draw.rectangle((x0, y0, x1, y1), outline=DIGIT_COLOUR, width=2)
            label = "?" if digit.label is None else str(digit.label)
            left, top, right, bottom = draw.textbbox((x0, y0 - 22), label, font=font)
            draw.rectangle((left - 3, top - 2, right + 3, bottom + 2), fill=DIGIT_COLOUR)
            draw.text((x0, y0 - 22), label, fill=LABEL_COLOUR, font=font)
    return image


def reading_picture(names: list[str]) -> Image.Image:
    """The examples called ``names`` side by side, read and annotated."""
    recognizer = Recognizer.load("default")
    panels = [annotated(EXAMPLES_DIR / n, recognizer.read(EXAMPLES_DIR / n)) for n in names]
    gap = 16
    picture = Image.new("RGB", (sum(p.width for p in panels) + gap, PANEL_HEIGHT), "white")
    left = 0
    for panel in panels:
        picture.paste(panel, (left, 0))
        left += panel.width + gap
    return picture


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served() -> Iterator[str]:
    """``digitrec serve`` on a free loopback port; yield its URL once it is ready."""
    port = free_port()
    command = [sys.executable, "-m", "digitrec", "serve", "--host", "127.0.0.1", "--port"]
    server = subprocess.Popen([*command, str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/readyz", timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"digitrec serve did not start at {url}") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def draw_digits(page, text: str) -> None:
    """Write ``text`` on the drawing pad with the mouse, a digit per cell across its middle."""
    pad = page.get_by_test_id("pad").bounding_box()
    width, height = 0.4 * pad["height"], 0.65 * pad["height"]
    pitch = min(1.4 * width, 0.9 * pad["width"] / len(text))
    left = pad["x"] + (pad["width"] - pitch * (len(text) - 1) - width) / 2
    top = pad["y"] + (pad["height"] - height) / 2
    for i, digit in enumerate(text):
        x = left + pitch * i
        for stroke in STROKES[digit]:
            (u, v), *rest = stroke
            page.mouse.move(x + u * width, top + v * height)
            page.mouse.down()
            for u, v in rest:
                page.mouse.move(x + u * width, top + v * height, steps=4)
            page.mouse.up()


def drawing_page_picture(path: Path) -> None:
    """Screenshot the drawing page after ``DRAWN`` is written on it and read."""
    from playwright.sync_api import expect, sync_playwright

    with served() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        page.goto(url)
        draw_digits(page, DRAWN)
        result = page.get_by_test_id("result")
        expect(result).to_have_attribute("aria-busy", "false", timeout=15_000)
        expect(result).to_have_text(DRAWN, timeout=1)
        expect(page.locator("#model-card")).not_to_contain_text("loading")
        page.screenshot(path=path, full_page=True)
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=IMAGES_DIR, help="default: docs/images/")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    picture = reading_picture(["form.jpg", "page.png"]).quantize(PALETTE_COLOURS)
    picture.save(args.out / "reading.png", optimize=True)
    drawing_page_picture(args.out / "drawing-page.png")
    for name in ("reading.png", "drawing-page.png"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
