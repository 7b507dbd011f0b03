"""The service's settings: made only valid, from Python as from the command line or a worker
process's environment, each described once (``digitrec.settings``) with its flag."""

from __future__ import annotations

import json

import pytest

from digitrec.errors import DigitrecError
from digitrec.serve.settings import SETTINGS_ENV, ServerOptions, ServeSettings


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ServeSettings(concurrent_reads=0),
            "concurrent_reads (--concurrent-reads) must be at least 1, not 0",
        ),
        (
            lambda: ServeSettings(body_timeout=float("nan")),
            "body_timeout (--body-timeout) must be a finite number above 0, not nan",
        ),
        (
            lambda: ServeSettings(max_body_bytes=0),
            "max_body_bytes (--max-body-mb) must be above 0, not 0",
        ),
        (lambda: ServeSettings(threads=True), "threads (--threads) must be a whole number"),
        (lambda: ServeSettings(allowed_hosts="localhost"), "must be a list of names"),
        (lambda: ServerOptions(port=70000), "port (--port) must be from 1 to 65535, not 70000"),
        (lambda: ServerOptions(log_level="loud"), "must be one of debug, info, warning, error"),
        (lambda: ServerOptions(workers=0), "workers (--workers) must be at least 1, not 0"),
    ],
)
def test_settings_made_in_python_are_checked_as_the_flags_are(make, message):
    with pytest.raises(DigitrecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_settings_keep_none_where_it_means_a_default_and_take_lists_of_hosts():
    settings = ServeSettings(threads=None, max_pixels=None, allowed_hosts=["a.example"])
    assert (settings.threads, settings.max_pixels) == (None, None)
    assert settings.allowed_hosts == ("a.example",)


def test_a_worker_process_refuses_settings_from_its_environment_that_are_not_valid(monkeypatch):
    monkeypatch.setenv(SETTINGS_ENV, json.dumps({"queued_reads": -1}))
    with pytest.raises(DigitrecError, match="queued_reads"):
        ServeSettings.from_env()
