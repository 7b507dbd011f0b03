"""One study shared through a real PostgreSQL server, as by the same command on two machines."""

from __future__ import annotations

import glob
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from digitrec.tune import FINISHED, TuneSettings, open_storage

# Each process waits, with TensorFlow imported, until told to start, so both open the new
# study at the same moment, as two machines given the same command would.
WORKER = """
import pickle, sys, time
from pathlib import Path
from digitrec.tune import tune
settings = pickle.loads(Path(sys.argv[1]).read_bytes())
Path(sys.argv[2]).touch()
while not Path(sys.argv[3]).exists():
    time.sleep(0.05)
tune(settings)
"""


def server_binaries() -> Path | None:
    """The newest PostgreSQL server's bin directory, as Debian installs it, if any."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    numbered = [p for p in found if p.parent.name.isdigit()]
    return max(numbered, key=lambda p: int(p.parent.name), default=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway server in a temporary directory, as an unprivileged user, stopped whatever
    happens; its URL (a trusted local user, no password)."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("needs the PostgreSQL server binaries (Debian package postgresql)")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # root is refused
    root = Path(tempfile.mkdtemp(prefix="digitrec-pg-"))
    data, port = root / "data", free_port()

    def run(program: str, *args: str, check: bool = True) -> None:
        command = [*as_user, str(binaries / program), *args]
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
        if check and result.returncode:
            log = root / "server.log"
            raise RuntimeError(
                f"{program} failed: {result.stdout}{result.stderr}"
                + (log.read_text() if log.exists() else "")
            )

    try:
        if as_user:
            shutil.chown(root, "postgres", "postgres")
        run("initdb", "-D", str(data), "-U", "digitrec", "--auth=trust", "--no-sync")
        options = f"-h 127.0.0.1 -p {port} -k {root}"
        run("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "start")
        yield f"postgresql://digitrec@127.0.0.1:{port}/postgres"
    finally:
        if data.exists():
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_two_processes_sharing_a_postgresql_study_neither_repeat_nor_lose_trials(
    postgres_url, tiny, tmp_path
):
    info, directory, _ = tiny
    go = tmp_path / "go"
    processes, trials = [], 2
    # Both spellings of the URL: each names the one driver installed.
    urls = [postgres_url, postgres_url.replace("postgresql://", "postgresql+psycopg2://")]
    storage = open_storage(urls[0])  # the schema, made once, as before a second machine joins
    try:
        for i, url in enumerate(urls):
            settings = TuneSettings(
                dataset=info,
                data_dir=directory,
                trials=trials,
                fixed={"epochs": 1, "val_size": 20},
                storage=url,
                out=tmp_path / f"machine{i}",
                progress=False,
            )
            pickled, ready = tmp_path / f"settings{i}.pickle", tmp_path / f"ready{i}"
            pickled.write_bytes(pickle.dumps(settings))
            command = [sys.executable, "-c", WORKER, str(pickled), str(ready), str(go)]
            with open(tmp_path / f"stderr{i}", "w") as stderr:
                processes.append((subprocess.Popen(command, stderr=stderr), ready))
        deadline = time.monotonic() + 120
        while not all(ready.exists() for _, ready in processes) and time.monotonic() < deadline:
            assert all(p.poll() is None for p, _ in processes), "a process stopped before its start"
            time.sleep(0.1)
        go.touch()
        for process, _ in processes:
            process.wait(timeout=240)
    finally:
        for process, _ in processes:
            process.kill()
            process.wait()
    errors = [(tmp_path / f"stderr{i}").read_text()[-3000:] for i in range(len(processes))]
    assert [p.returncode for p, _ in processes] == [0, 0], errors

    study = optuna.load_study(study_name="lenet5-tiny", storage=storage)
    stored = study.trials
    assert [t.number for t in stored] == list(range(len(stored)))
    assert all(t.state in FINISHED for t in stored), [t.state for t in stored]
    assert trials <= len(stored) <= trials + 1  # the other process may finish the trial it began
    assert len({json.dumps(t.params, sort_keys=True) for t in stored}) == len(stored)
    assert len({t.user_attrs["pid"] for t in stored}) == 2  # both drew trials, side by side
