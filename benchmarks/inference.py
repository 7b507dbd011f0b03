"""Inference speed: ONNX Runtime (the recognizer) against Keras `model.predict`, side by side.

For each run directory (its `model.keras`, and its `model.onnx`, exported if missing):

- start-up: wall time of a fresh `digitrec predict IMAGE --model model.onnx` process;
- single-image latency p50/p99: PNG bytes of one handwritten-style digit -> decode, normalize,
  classify (`Recognizer.read` for ONNX; the same normalization then `model.predict` for Keras);
- batch throughput: images/s on 1,000 already-normalized 28x28 inputs in one call.

Each figure is the median over `--repeats` repetitions. Targets: ONNX single-image
latency >= 5x lower than Keras, >= 20,000 images/s for lenet5, `digitrec predict` under 1 s.
Without run directories a LeNet-5 is trained for one epoch (speed does not depend on accuracy).

    python benchmarks/inference.py [RUN_DIR ...] [--repeats 5] [--write-readme]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, median, write_into_readme

BATCH = 1000
LATENCY_CALLS = {"onnx": 200, "keras": 40}  # single-image calls per repetition


def digit_png(image28: np.ndarray) -> bytes:
    """An MNIST digit as a user's image: dark on white, 4x larger, in a wider margin, PNG."""
    page = np.full((160, 160), 255, dtype=np.uint8)
    page[24:136, 30:142] = 255 - np.asarray(Image.fromarray(image28).resize((112, 112)))
    buffer = io.BytesIO()
    Image.fromarray(page).save(buffer, "PNG")
    return buffer.getvalue()


def startup_seconds(onnx: Path, image: Path) -> float:
    """Wall time of one fresh `digitrec predict` process reading one image."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "digitrec", "predict", str(image), "--model", str(onnx)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def latencies_ms(read, png: bytes, calls: int) -> list[float]:
    """Per-call times of ``read(png)`` in milliseconds, after one warm-up call."""
    read(png)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        read(png)
        times.append((time.perf_counter() - start) * 1000)
    return times


def throughput(predict, batch: np.ndarray) -> float:
    """Images per second of one call on the whole batch, after one warm-up call."""
    predict(batch)
    start = time.perf_counter()
    predict(batch)
    return len(batch) / (time.perf_counter() - start)


def measure(run_dir: Path, png: bytes, batch: np.ndarray, repeats: int) -> dict[str, dict]:
    """Every figure for one run directory, ONNX and Keras, medians over the repetitions."""
    import keras

    from digitrec.read.imaging import find_digits, load_image
    from digitrec.read.recognizer import Recognizer
    from digitrec.training.export import export_model

    onnx = run_dir / "model.onnx"
    if not onnx.exists():
        export_model(run_dir, "onnx", onnx)
    recognizer = Recognizer.load(onnx)
    model = keras.saving.load_model(run_dir / "model.keras")

    def keras_read(data: bytes) -> np.ndarray:
        crops = find_digits(load_image(data))
        return model.predict(np.stack([c.image for c in crops])[..., None], verbose=0)

    readers = {"onnx": recognizer.read, "keras": keras_read}
    predictors = {
        "onnx": recognizer.predict_proba,
        "keras": lambda x: model.predict(x, batch_size=BATCH, verbose=0),
    }
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "digit.png"
        image.write_bytes(png)
        startup = median([startup_seconds(onnx, image) for _ in range(repeats)])
    results = {}
    for runtime in ("onnx", "keras"):
        p50, p99, rates = [], [], []
        for _ in range(repeats):
            times = latencies_ms(readers[runtime], png, LATENCY_CALLS[runtime])
            p50.append(float(np.percentile(times, 50)))
            p99.append(float(np.percentile(times, 99)))
            rates.append(throughput(predictors[runtime], batch))
        results[runtime] = {
            "startup": startup if runtime == "onnx" else None,
            "p50": median(p50),
            "p99": median(p99),
            "throughput": median(rates),
        }
    return {"name": model.name, "params": model.count_params(), **results}


def quick_run(out: Path) -> Path:
    """A LeNet-5 trained for one epoch, for timing only."""
    from digitrec.training.config import resolve_config
    from digitrec.training.train import train

    return train(resolve_config("lenet5", epochs=1), out / "lenet5", verbose=False)


def table(results: list[dict], repeats: int) -> str:
    rows = []
    for result in results:
        for runtime, label in (("onnx", "ONNX Runtime"), ("keras", "Keras predict")):
            figures = result[runtime]
            startup = figures["startup"]
            rows.append(
                [
                    f"{result['name']} ({result['params']:,} params)",
                    label,
                    f"{startup:.2f}" if startup is not None else "—",
                    f"{figures['p50']:.2f}",
                    f"{figures['p99']:.2f}",
                    f"{figures['throughput']:,.0f}",
                ]
            )
    header = [
        "model",
        "runtime",
        "`digitrec predict` start-up (s)",
        "latency p50 (ms)",
        "latency p99 (ms)",
        f"throughput, batch {BATCH:,} (images/s)",
    ]
    load = os.getloadavg()[0]
    lines = [
        f"Inference, medians of {repeats} repetitions; {machine()}; load average {load:.1f} "
        "at the end (other work on the machine slows every figure).",
        "",
    ]
    lines.append(markdown_table(header, rows))
    lines.append("")
    for result in results:
        speedup = result["keras"]["p50"] / result["onnx"]["p50"]
        lines.append(
            f"- {result['name']}: ONNX single-image latency {speedup:.1f}x lower than Keras "
            f"(target >= 5x: {'met' if speedup >= 5 else 'NOT met'}); start-up "
            f"{result['onnx']['startup']:.2f} s (target < 1 s: "
            f"{'met' if result['onnx']['startup'] < 1 else 'NOT met'}); ONNX throughput "
            f"{result['onnx']['throughput']:,.0f} images/s"
            + (
                f" (target >= 20,000 for lenet5: "
                f"{'met' if result['onnx']['throughput'] >= 20000 else 'NOT met'})"
                if result["name"] == "lenet5"
                else ""
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()

    from digitrec.data import as_model_input, load_dataset

    data = load_dataset("mnist", progress=False)
    png = digit_png(data.test_images[0])
    batch = as_model_input(data.test_images[:BATCH])
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or [quick_run(Path(tmp))]
        results = [measure(run, png, batch, args.repeats) for run in runs]
    text = table(results, args.repeats)
    print(text)
    if args.write_readme:
        write_into_readme("inference", text)


if __name__ == "__main__":
    main()
