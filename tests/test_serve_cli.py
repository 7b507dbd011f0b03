"""``digitrec serve``: its options checked before anything starts, what it hands uvicorn, and
the real command with worker processes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from importlib import resources

import httpx
import pytest
import uvicorn
from fresh_python import run_importing_none_of
from live_server import free_port, wait_until_ready
from serve_support import drawn_ones

from digitrec.cli import main
from digitrec.serve.settings import SETTINGS_ENV, ServerOptions, ServeSettings
from digitrec.settings import described


def test_serve_reports_a_missing_model_as_a_plain_error(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx" in capsys.readouterr().err


def test_serve_reports_a_missing_line_model_as_a_plain_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server was started"))
    assert main(["serve", "--lines", str(tmp_path / "no-lines.onnx")]) == 2
    assert "no-lines.onnx" in capsys.readouterr().err


def shipped_copy(name: str, folder) -> str:
    """A copy of a model shipped in the package, as a user's own model file."""
    copy = folder / f"my-{name}"
    with resources.as_file(resources.files("digitrec") / "assets" / name) as shipped:
        shutil.copyfile(shipped, copy)
    return str(copy)


def test_lines_gives_the_service_its_page_reader_and_none_takes_it_away(
    tmp_path, monkeypatch, capsys
):
    """Another classifier than the shipped one was served without a page reader, with no
    option to give it one."""
    classifier, lines = shipped_copy("default.onnx", tmp_path), shipped_copy("lines.onnx", tmp_path)
    (app,), _ = run_serve(["--model", classifier], monkeypatch)
    assert app.state.settings.lines == "default"
    assert app.state.recognizer.pages is not None
    (app,), _ = run_serve(["--model", classifier, "--lines", lines], monkeypatch)
    assert app.state.settings.lines == lines
    assert app.state.recognizer.pages.reader.source == lines
    (app,), _ = run_serve(["--lines", "none"], monkeypatch)
    assert app.state.recognizer.pages is None


BAD_OPTIONS = [
    ["--port", "70000"],
    ["--port", "0"],
    ["--port", "-1"],
    ["--port", "http"],
    ["--workers", "0"],
    ["--threads", "0"],
    ["--threads", "1.5"],
    ["--max-body-mb", "nan"],
    ["--max-body-mb", "inf"],
    ["--max-body-mb", "-1"],
    ["--max-body-mb", "0"],
    ["--max-pixels", "0"],
    ["--concurrent-reads", "0"],
    ["--queued-reads", "-1"],
    ["--body-timeout", "0"],
    ["--body-timeout", "nan"],
    ["--uploads-per-client", "0"],
    ["--max-header-kb", "0"],
    ["--timeout", "inf"],
    ["--allowed-hosts", "example.com:8000"],
    ["--allowed-hosts", "a*.example.com"],
    ["--allowed-hosts", "example.com,,localhost"],
    ["--collect-max-files", "0"],
    ["--collect-max-mb", "nan"],
]


@pytest.mark.parametrize("option", BAD_OPTIONS, ids=[" ".join(o) for o in BAD_OPTIONS])
def test_a_bad_option_value_is_a_one_line_error_before_anything_starts(option, capsys, monkeypatch):
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server was started"))
    with pytest.raises(SystemExit) as exit_:
        main(["serve", *option])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith(f"digitrec serve: error: argument {option[0]}: ")
    assert option[1] in error or "host name" in error


def test_a_collect_folder_holding_class_folders_and_lines_is_taken(tmp_path, monkeypatch):
    target = tmp_path.resolve() / "collected"
    for name in ("7", "lines", ".usage.json"):
        (target / name).mkdir(parents=True)
    (app,), _ = run_serve(["--collect", str(target)], monkeypatch)
    assert app.state.settings.collect_dir == str(target)


@pytest.mark.parametrize(
    ("content", "message"),
    [("file", "is a file, not a folder"), ("other", "holds 'notes', which is not a class folder")],
)
def test_a_collect_folder_that_is_a_file_or_holds_other_things_is_refused_before_starting(
    tmp_path, content, message, capsys, monkeypatch
):
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server was started"))
    target = tmp_path / "collected"
    if content == "file":
        target.write_text("x")
    else:
        (target / "7").mkdir(parents=True)
        (target / "notes").mkdir()
    with pytest.raises(SystemExit):
        main(["serve", "--collect", str(target)])
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("digitrec serve: error: argument --collect: ")
    assert message in error


def run_serve(args: list[str], monkeypatch) -> tuple[tuple, dict]:
    """``digitrec serve ARGS`` with uvicorn.run recorded instead of run."""
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append((a, k)))
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    assert main(["serve", *args]) == 0
    [(positional, options)] = calls
    return positional, options


def test_serve_hands_uvicorn_the_header_and_time_bounds_and_the_app_its_settings(
    monkeypatch, capsys
):
    args = "--host 192.0.2.7 --port 8123 --max-header-kb 8 --timeout 2.5 --max-body-mb 0.5"
    limits = ["--concurrent-reads", "2", "--uploads-per-client", "5"]
    (app,), options = run_serve([*args.split(), *limits], monkeypatch)
    assert options == ServerOptions("192.0.2.7", 8123, "info", 8 * 1024, 2.5).uvicorn_options()
    assert options["http"] == "digitrec.serve.server:HeaderTimeoutProtocol"
    settings = app.state.settings
    assert settings.max_body_bytes == 512 * 1024
    assert settings.allowed_hosts == ("localhost", "127.0.0.1", "[::1]", "192.0.2.7")
    assert app.state.capacity.capacity == 2 + ServeSettings.queued_reads
    assert app.state.uploads.limit == 5
    assert "http://192.0.2.7:8123/" in capsys.readouterr().out


def test_serve_names_an_ipv6_host_in_brackets_and_allowed_hosts_replace_the_defaults(
    monkeypatch, capsys
):
    (app,), _ = run_serve(["--host", "::1", "--allowed-hosts", "Digits.Example,*.lan"], monkeypatch)
    assert app.state.settings.allowed_hosts == ("digits.example", "*.lan")
    assert "http://[::1]:8000/" in capsys.readouterr().out


def test_collect_creates_the_folder_and_hands_the_app_the_collection_and_its_limits(
    tmp_path, monkeypatch, capsys
):
    target = tmp_path.resolve() / "new" / "corrections"
    args = ["--collect", str(target), "--collect-max-files", "50", "--collect-max-mb", "0.5"]
    (app,), _ = run_serve(args, monkeypatch)
    settings = app.state.settings
    assert (settings.collect_dir, settings.collect_max_files) == (str(target), 50)
    assert settings.collect_max_bytes == 512 * 1024
    assert target.is_dir()
    assert f"collecting corrections in {target}" in capsys.readouterr().out
    (app,), _ = run_serve([], monkeypatch)
    assert app.state.settings.collect_dir is None


def test_serve_hands_worker_processes_the_same_settings(tmp_path, monkeypatch):
    collected = tmp_path.resolve() / "fixes"
    args = ["--workers", "2", "--allowed-hosts", "*", "--collect", str(collected)]
    (target,), options = run_serve(
        [*args, "--collect-max-files", "9", "--lines", "none"], monkeypatch
    )
    assert target == "digitrec.serve.app:app_from_env"
    assert options["workers"] == 2
    assert options["factory"] is True
    assert ServeSettings.from_env() == ServeSettings(
        lines="none", allowed_hosts=("*",), collect_dir=str(collected), collect_max_files=9
    )


def test_digitrec_serve_runs_workers_and_shuts_down_gracefully_on_sigterm():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digitrec", "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, process=process)
        response = httpx.post(
            url + "/api/v1/recognize", files={"image": ("one.png", drawn_ones(), "image/png")}
        )
        assert response.json()["text"] == "1"
        assert httpx.get(url + "/healthz", headers={"host": "evil.example"}).status_code == 400
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in process.stdout.read()


def test_the_service_never_imports_tensorflow_or_keras():
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "import digitrec.cli.serve\n"
        "from digitrec.serve.app import create_app, ServeSettings\n"
        "app = create_app(settings=ServeSettings())\n"
        "with TestClient(app, base_url='http://localhost') as client:\n"
        "    client.get('/api/v1/model').raise_for_status()\n"
        "    client.post('/api/v1/recognize', content=sys.stdin.buffer.read(),\n"
        "                headers={'content-type': 'image/png'}).raise_for_status()\n"
    )
    result = run_importing_none_of(("tensorflow", "keras"), code, stdin=drawn_ones())
    assert result.returncode == 0, result.stderr.decode()


def test_every_setting_has_its_flag_with_its_help_and_default(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for settings_class in (ServeSettings, ServerOptions):
        for name, (_, rules) in described(settings_class).items():
            assert f"{rules.flag_of(name)} " in text, name
            assert " ".join(rules.help.split()) in text, name
    assert "--max-body-mb MB largest request body accepted (default: 10)" in text
    assert "--max-header-kb KB largest request line and headers, else 400 (default: 16)" in text


def test_a_size_in_megabytes_is_whole_bytes_and_at_least_one(monkeypatch):
    (app,), _ = run_serve(["--max-body-mb", "1e-9", "--collect-max-mb", "1.5"], monkeypatch)
    assert (app.state.settings.max_body_bytes, app.state.settings.collect_max_bytes) == (
        1,
        3 * 512 * 1024,
    )


def test_flags_not_given_leave_the_defaults(monkeypatch):
    (app,), _ = run_serve([], monkeypatch)
    assert app.state.settings == ServeSettings(
        allowed_hosts=("localhost", "127.0.0.1", "[::1]", "127.0.0.1")
    )
