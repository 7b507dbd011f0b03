"""Reading many files (``digitrec.batch``, ``digitrec predict --jobs/--output/--resume/--ray``):
worker processes and Ray give the results of one process, output lines are whole and written as
results arrive, a killed run resumes with every image read exactly once, --files-from, Parquet,
and no TensorFlow in any worker."""

from __future__ import annotations

import inspect
import io
import json
import os
import socket
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from fresh_python import SRC, run_importing_none_of
from PIL import Image
from test_files import dead_pid
from test_predict import write_digits

from digitrec.batch import jobs as batch
from digitrec.batch.jobs import read_files
from digitrec.batch.output import for_output
from digitrec.batch.worker import ReadSettings
from digitrec.cli import main
from digitrec.errors import DigitrecError
from digitrec.read.options import ReadOptions
from digitrec.read.recognizer import Recognizer

# Ray Data's own settings warn of their deprecation when it copies them; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve images of one to three digits, one in a subfolder, and a broken file."""
    root = tmp_path_factory.mktemp("images")
    for k in range(11):
        write_digits(root / f"{k:02d}.png", [k % 10, (3 * k) % 10][: 1 + k % 2], seed=k)
    write_digits(root / "sub" / "inner.jpg", [4, 2, 7], seed=11)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    return root


def output_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def one_process(folder: Path, capsys) -> set[str]:
    """The JSON lines of the plain single-process run, the reference for the others."""
    assert main(["predict", str(folder), "--json"]) == 1
    return set(capsys.readouterr().out.splitlines())


def test_two_worker_processes_give_the_results_of_one_process(folder, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(folder), "--jobs", "2", "--output", str(out)]) == 1
    assert capsys.readouterr().out == ""  # the results went to the file
    assert set(output_lines(out)) == one_process(folder, capsys)
    assert len(output_lines(out)) == 13


def test_a_broken_file_gets_its_error_line_and_the_others_are_read(folder, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(folder), "--jobs", "2", "--output", str(out)]) == 1
    assert "1 of 13 images could not be read" in capsys.readouterr().err
    results = {Path(r["file"]).name: r for r in map(json.loads, output_lines(out))}
    assert results.pop("broken.png")["error"].endswith("corrupt PNG image: unreadable header")
    assert len(results) == 12 and all(r["error"] is None and r["digits"] for r in results.values())


def patch_workers(monkeypatch, tmp_path: Path, code: str) -> None:
    """Worker processes started from now on run ``code`` first: a ``sitecustomize`` module that
    they import at start-up."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(code)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))


def crash_in_workers(monkeypatch, tmp_path: Path, ending: str) -> None:
    """Worker processes started from now on end at once (``os._exit``) on reading a file whose
    name ends with ``ending``: their ``digitrec.batch.jobs.read_file`` is wrapped."""
    patch_workers(
        monkeypatch,
        tmp_path,
        "import os\n"
        "import digitrec.batch.jobs as batch\n"
        "read = batch.read_file\n"
        "def read_file(recognizer, file, settings):\n"
        f"    if file.endswith({ending!r}):\n"
        "        os._exit(3)\n"
        "    return read(recognizer, file, settings)\n"
        "batch.read_file = read_file\n",
    )


ORIGINAL_READ = Recognizer.read


def read_with_a_bug(self, image, *args, **kwargs):
    """``Recognizer.read`` meeting a bug (an unexpected ``cv2.error``) on files named 05.png."""
    if str(image).endswith("05.png"):
        import cv2

        raise cv2.error("a bug met on this file")
    return ORIGINAL_READ(self, image, *args, **kwargs)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("jobs", [1, 2])
def test_an_unexpected_error_on_one_file_is_its_error_and_the_run_can_finish(
    jobs, folder, tmp_path, capsys, monkeypatch
):
    if jobs == 1:
        monkeypatch.setattr(Recognizer, "read", read_with_a_bug)
    else:
        patch_workers(
            monkeypatch,
            tmp_path,
            "from digitrec.read.recognizer import Recognizer\n"
            "ORIGINAL_READ = Recognizer.read\n"
            f"{inspect.getsource(read_with_a_bug)}"
            "Recognizer.read = read_with_a_bug\n",
        )
    out = tmp_path / "out.jsonl"
    run = ["predict", str(folder), "--jobs", str(jobs), "--output", str(out)]
    assert main(run) == 1
    assert "2 of 13 images could not be read" in capsys.readouterr().err
    results = {Path(r["file"]).name: r for r in map(json.loads, output_lines(out))}
    assert len(results) == 13 and results["00.png"]["error"] is None
    assert results["05.png"]["error"] == (
        "internal error while reading it (cv2.error: a bug met on this file); please report it"
    )
    assert main([*run, "--resume"]) == 1  # nothing left to read
    assert "13 of 13 images already in" in capsys.readouterr().err
    assert len(output_lines(out)) == 13


@pytest.mark.timeout(180)
def test_a_file_that_ends_its_worker_process_gets_an_error_and_the_others_are_read(
    folder, tmp_path, capsys, monkeypatch
):
    reference = {line for line in one_process(folder, capsys) if "05.png" not in line}
    crash_in_workers(monkeypatch, tmp_path, "05.png")
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(folder), "--jobs", "2", "--output", str(out)]) == 1
    assert "2 of 13 images could not be read" in capsys.readouterr().err
    lines = output_lines(out)
    ended = [json.loads(line) for line in lines if "05.png" in line]
    assert len(lines) == 13 and len(ended) == 1
    assert ended[0]["error"].startswith("the worker process reading it ended unexpectedly")
    assert set(lines) - {lines[lines.index(json.dumps(ended[0]))]} == reference


@pytest.mark.timeout(180)
def test_workers_ending_on_every_file_stop_the_run_after_three(
    folder, tmp_path, capsys, monkeypatch
):
    crash_in_workers(monkeypatch, tmp_path, "g")  # .png and .jpg
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(folder), "--jobs", "2", "--output", str(out)]) == 2
    assert "ended unexpectedly on 3 files in a row" in capsys.readouterr().err
    assert [json.loads(line)["error"] is not None for line in output_lines(out)] == [True] * 3


def test_each_result_is_written_as_a_whole_line_before_the_next_is_read(folder, tmp_path):
    out = tmp_path / "out.jsonl"
    results = iter(read_files([folder], output=out))
    first = next(results)
    assert out.read_text() == json.dumps(for_output(first)) + "\n"
    second = next(results)
    assert output_lines(out) == [json.dumps(for_output(first)), json.dumps(for_output(second))]
    results.close()


def test_an_existing_output_is_continued_only_with_resume(folder, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    out.write_text('{"file": "x.png", "text": "1", "digits": [], "error": null}\n')
    assert main(["predict", str(folder), "--output", str(out)]) == 2
    assert "add --resume" in capsys.readouterr().err
    assert main(["predict", str(folder), "--resume"]) == 2
    assert "--resume continues an --output file" in capsys.readouterr().err
    out.write_text(out.read_text() + "not json\n")
    before = out.read_bytes()
    assert main(["predict", str(folder), "--output", str(out), "--resume"]) == 2
    assert "line 2: not a result of digitrec predict" in capsys.readouterr().err
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [b"my notes, no newline", b'{"file": "a.png", "note": 1}\n', b"first\nsecond\n"],
    ids=["text-without-newline", "json-of-other-keys", "text"],
)
def test_resume_refuses_an_output_that_is_not_ours_and_leaves_it_untouched(
    content, folder, tmp_path, capsys
):
    out = tmp_path / "notes.txt"
    out.write_bytes(content)
    assert main(["predict", str(folder / "00.png"), "--output", str(out), "--resume"]) == 2
    assert "line 1: not a result of digitrec predict" in capsys.readouterr().err
    assert out.read_bytes() == content


def test_resume_drops_a_torn_last_line_however_short(folder, tmp_path):
    out, image = tmp_path / "out.jsonl", str(folder / "00.png")
    done = json.dumps({"file": "x.png", "text": "", "digits": [], "lines": [], "error": None})
    out.write_text(done + "\n{")  # killed one byte into its next line
    assert main(["predict", image, "--output", str(out), "--resume"]) == 0
    assert [json.loads(line)["file"] for line in output_lines(out)] == ["x.png", image]


def test_resume_reads_again_the_files_whose_worker_ended(folder, tmp_path, capsys):
    from digitrec.batch.output import ENDED_WORKER

    out, ended, done = tmp_path / "out.jsonl", str(folder / "00.png"), str(folder / "01.png")
    lines = [
        {"file": ended, "text": "", "digits": [], "lines": [], "error": ENDED_WORKER},
        {"file": done, "text": "1", "digits": [], "lines": [], "error": None},
    ]
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["predict", ended, done, "--output", str(out), "--resume"]) == 0
    results = [json.loads(line) for line in output_lines(out)]
    assert [r["file"] for r in results] == [ended, done, ended]  # read again, once; the rest not
    assert results[-1]["error"] is None and results[-1]["text"]


def test_a_second_run_on_the_same_output_is_refused_while_the_first_writes(folder, tmp_path):
    out = tmp_path / "out.jsonl"
    first = iter(read_files([folder], output=out))
    next(first)
    with pytest.raises(DigitrecError, match="being written by another digitrec predict"):
        read_files([folder], output=out, resume=True)
    first.close()
    written = out.read_text()
    second = iter(read_files([folder], output=out, resume=True))  # the first has stopped
    assert next(second)["file"] not in written
    second.close()


def start_predict(*args: str) -> subprocess.Popen:
    """``digitrec predict ARGS`` (this checkout's) in a new process."""
    return subprocess.Popen(
        [sys.executable, "-m", "digitrec", "predict", *args],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stderr=subprocess.DEVNULL,
    )


def wait_for_lines(run: subprocess.Popen, out: Path, count: int) -> None:
    """Until ``run`` has written ``count`` lines to ``out``, or ended."""
    while run.poll() is None and (not out.exists() or out.read_bytes().count(b"\n") < count):
        time.sleep(0.005)


def test_a_resumed_run_counts_the_failures_already_in_the_output(folder, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(folder / "broken.png"), "--output", str(out)]) == 1
    capsys.readouterr()
    good = str(folder / "00.png")
    assert (
        main(["predict", str(folder / "broken.png"), good, "--output", str(out), "--resume"]) == 1
    )
    assert "1 of 2 images could not be read" in capsys.readouterr().err
    assert [json.loads(line)["file"] for line in output_lines(out)][1:] == [good]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--ray", "--save-normalized", "x"], "--save-normalized is not available with --ray"),
        (["--output", "."], "is a folder; name a file"),
        pytest.param(
            ["--ray", "127.0.0.1:1"],
            "cannot reach Ray at 127.0.0.1:1",
            marks=pytest.mark.skipif(not find_spec("ray"), reason="needs digitrec[scale]"),
        ),
    ],
)
def test_bad_batch_options_are_clear_errors(folder, options, message, capsys):
    assert main(["predict", str(folder), *options]) == 2
    assert message in capsys.readouterr().err


def test_reading_options_as_one_value_reach_the_worker_processes(folder):
    files = [str(folder / "01.png"), str(folder / "sub" / "inner.jpg")]
    options = ReadOptions(top_k=1, reader="digits")
    whole = {r["file"]: r for r in read_files(files, options=options, jobs=2)}
    one_by_one = {r["file"]: r for r in read_files(files, top_k=1, reader="digits")}
    assert whole == one_by_one
    assert all(len(digit["top"]) == 1 for r in whole.values() for digit in r["digits"])


def test_reading_options_given_whole_and_one_by_one_are_refused(folder):
    with pytest.raises(DigitrecError, match="reading options given twice"):
        read_files([folder], top_k=2, options=ReadOptions())


@pytest.mark.parametrize(
    ("module", "options"), [("ray", ["--ray"]), ("pyarrow", ["--output", "out.parquet"])]
)
def test_ray_and_parquet_without_their_packages_say_what_to_install(
    folder, module, options, capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    assert main(["predict", str(folder), *options]) == 2
    assert "pip install 'digitrec[scale]'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.timeout(120)
def test_a_killed_run_resumes_with_every_image_read_exactly_once(tmp_path, capsys):
    images = [
        write_digits(tmp_path / "in" / f"{k:02d}.png", [k % 10, 7, k // 10, 1, 5, 9], seed=k)
        for k in range(60)
    ]
    out = tmp_path / "out.jsonl"
    run = start_predict(str(tmp_path / "in"), "--jobs", "1", "--output", str(out))
    wait_for_lines(run, out, 3)
    run.kill()
    run.wait()
    written = out.read_bytes()
    assert 3 <= written.count(b"\n") < 60, "the run was to be killed while it read"
    kept = written[: written.rfind(b"\n") + 1]  # a line cut short by the kill is read again
    done = kept.count(b"\n")
    with out.open("ab") as file:
        file.write(b'{"file": "' + str(images[0]).encode()[:12])  # a torn write
    assert main(["predict", str(tmp_path / "in"), "--output", str(out), "--resume"]) == 0
    assert f"{done} of 60 images already in" in capsys.readouterr().err
    assert out.read_bytes().startswith(kept)
    files = [json.loads(line)["file"] for line in output_lines(out)]
    assert sorted(files) == sorted(map(str, images))  # each image once, none lost
    assert main(["predict", str(tmp_path / "in"), "--output", str(out), "--resume"]) == 0
    assert len(output_lines(out)) == 60  # nothing left to read


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended, waiting for its parent to note it


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="lists processes in /proc")
@pytest.mark.timeout(120)
def test_worker_processes_end_when_their_parent_is_killed(folder, tmp_path):
    out = tmp_path / "out.jsonl"
    run = start_predict(*[str(folder)] * 30, "--jobs", "2", "--output", str(out))
    wait_for_lines(run, out, 1)
    workers = children(run.pid)
    run.kill()
    run.wait()
    assert len(workers) >= 2, "the run was to be killed while its workers read"
    deadline = time.monotonic() + 30
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if running(pid)]


def test_files_from_lists_files_and_folders_in_a_file_or_on_stdin(
    folder, tmp_path, capsys, monkeypatch
):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / '00.png'}\n\n  \n{folder / 'sub'}\n")
    assert main(["predict", "--files-from", str(listing), "--json"]) == 0
    files = [json.loads(line)["file"] for line in capsys.readouterr().out.splitlines()]
    assert files == [str(folder / "00.png"), str(folder / "sub" / "inner.jpg")]
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{folder / '01.png'}\n"))
    assert main(["predict", str(folder / "00.png"), "--files-from", "-", "--json"]) == 0
    files = [json.loads(line)["file"] for line in capsys.readouterr().out.splitlines()]
    assert files == [str(folder / "00.png"), str(folder / "01.png")]
    assert main(["predict", "--files-from", str(tmp_path / "missing.txt")]) == 2
    assert "--files-from" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["predict", "--files-from", "-"]) == 2
    assert "no image files or folders given" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.timeout(60)
def test_files_from_an_endless_source_stops_at_its_first_overlong_line(capsys):
    assert main(["predict", "--files-from", "/dev/zero"]) == 2
    assert "/dev/zero: line 1 is longer than 4096 characters" in capsys.readouterr().err


def test_files_from_stops_at_a_list_longer_than_the_limit(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(batch, "MAX_LISTED", 3)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / '00.png'}\n\n" * 4)
    assert main(["predict", "--files-from", str(listing)]) == 2
    assert "more than 3 names or 256 MiB; split the list" in capsys.readouterr().err


def test_worker_processes_save_the_normalized_inputs_of_one_process(folder, tmp_path):
    assert main(["predict", str(folder), "--save-normalized", str(tmp_path / "one")]) == 1
    assert main(["predict", str(folder), "--jobs", "2", "--save-normalized", str(tmp_path / "two")])
    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert one == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(one) > 12
    for name in one:
        expected = np.asarray(Image.open(tmp_path / "one" / name))
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "two" / name)), expected)


def test_parquet_output_holds_the_json_results_and_is_never_extended_or_replaced(
    folder, tmp_path, capsys
):
    parquet = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "out.parquet"
    assert main(["predict", str(folder), "--output", str(out)]) == 1
    rows = {row["file"]: row for row in parquet.read_table(out).to_pylist()}
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]  # no temporary left
    for line in one_process(folder, capsys):
        result = json.loads(line)
        lines_digits = [digit for item in result["lines"] for digit in item["digits"]]
        for digit in [*result["digits"], *lines_digits]:
            digit["top"] = [{"label": k, "probability": p} for k, p in digit["top"]]
        assert rows.pop(result["file"]) == result
    assert not rows
    assert main(["predict", str(folder), "--output", str(out), "--resume"]) == 2
    assert "a Parquet file cannot be extended" in capsys.readouterr().err
    before = out.read_bytes()
    assert main(["predict", str(folder), "--output", str(out)]) == 2
    assert "already exists; choose another --output" in capsys.readouterr().err
    assert out.read_bytes() == before


def non_utf8_name(folder: Path, name: bytes) -> Path:
    """``folder / name`` for a file name that is not valid UTF-8, as ``os.fsdecode`` gives it."""
    return folder / os.fsdecode(name)


def test_file_names_not_in_utf8_are_written_with_their_bytes_escaped_in_every_output(
    tmp_path, capsys
):
    parquet = pytest.importorskip("pyarrow.parquet")
    image, missing = non_utf8_name(tmp_path, b"caf\xe9.png"), non_utf8_name(tmp_path, b"\xff.png")
    try:
        write_digits(image, [4, 2])
    except OSError:
        pytest.skip("this file system takes only UTF-8 file names")
    names = [f"{tmp_path}{os.sep}caf\\xe9.png", f"{tmp_path}{os.sep}\\xff.png"]
    run = ["predict", str(image), str(missing)]
    assert main([*run, "--output", str(tmp_path / "out.parquet")]) == 1
    rows = parquet.read_table(tmp_path / "out.parquet").to_pylist()
    assert [row["file"] for row in rows] == names
    assert rows[0]["error"] is None and rows[0]["text"] and rows[1]["error"]
    expected = [(row["file"], row["error"]) for row in rows]
    assert main([*run, "--json"]) == 1
    printed = map(json.loads, capsys.readouterr().out.splitlines())
    assert [(line["file"], line["error"]) for line in printed] == expected
    out = tmp_path / "out.jsonl"
    assert main([*run, "--output", str(out)]) == 1
    written = map(json.loads, output_lines(out))
    assert [(line["file"], line["error"]) for line in written] == expected
    assert main([*run, "--output", str(out), "--resume"]) == 1  # both found in the output
    assert "2 of 2 images already in" in capsys.readouterr().err


def test_a_parquet_run_clears_the_temporaries_of_killed_runs_but_not_of_live_ones(folder, tmp_path):
    pytest.importorskip("pyarrow")
    host = socket.gethostname()
    killed = tmp_path / f".out.parquet.tmp-{dead_pid()}@{host}-abcd1234.parquet"
    live = tmp_path / f".out.parquet.tmp-{os.getpid()}@{host}-efgh5678.parquet"
    for temporary in (killed, live):
        temporary.write_bytes(b"half a Parquet file")
    assert main(["predict", str(folder / "00.png"), "--output", str(tmp_path / "out.parquet")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "out.parquet"])


def test_batch_reading_and_ray_import_no_tensorflow(folder):
    code = (
        "import digitrec\n"
        f"results = list(digitrec.read_files([{str(folder)!r}], jobs=2))\n"
        "assert len(results) == 13\n"
        "import ray, ray.data, digitrec.batch.on_ray\n"
    )
    pytest.importorskip("ray")
    run = run_importing_none_of(("tensorflow", "keras"), code)
    assert run.returncode == 0, run.stderr.decode()


def test_one_process_starts_local_ray_again_after_shutting_it_down(folder):
    """Ray's first local start keeps an authentication token in the home folder it is given;
    a second start in the same process failed when that folder was a new one."""
    pytest.importorskip("ray")
    files = [str(folder / "00.png"), str(folder / "broken.png")]
    for _ in range(2):
        results = list(read_files(files, jobs=1, ray=True))
        assert sorted(Path(result["file"]).name for result in results) == ["00.png", "broken.png"]


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray of 2 CPUs, started as ``digitrec predict --ray`` starts one, for this module."""
    ray = pytest.importorskip("ray")
    from digitrec.batch.on_ray import _connect

    _connect(ray, True, 2)
    yield ray
    ray.shutdown()


def test_ray_gives_the_results_of_one_process(ray_instance, folder, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(folder), "--ray", "--output", str(out)]) == 1
    assert set(output_lines(out)) == one_process(folder, capsys)
    assert len(output_lines(out)) == 13


def test_ray_actors_load_no_tensorflow(ray_instance, folder):
    from digitrec.batch.on_ray import ReadActor

    @ray_instance.remote
    def heavy_modules_after_reading(files: list[str]) -> list[str]:
        actor = ReadActor(ReadSettings(), "/")
        lines = actor({"item": np.array(files)})["result"]
        assert [json.loads(line)["file"] for line in lines] == files
        return sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))

    files = [str(folder / "00.png"), str(folder / "broken.png")]
    assert ray_instance.get(heavy_modules_after_reading.remote(files)) == []
