"""Where a study lives: an RDB storage (SQLite by default, PostgreSQL across machines).

PostgreSQL goes through one driver, psycopg 3 (``pip install 'digitrec[scale]'``):
``postgresql://``, ``postgresql+psycopg://`` and ``postgresql+psycopg2://`` URLs all name it,
so the URL does not depend on which driver the installed SQLAlchemy takes as its default.
"""

from __future__ import annotations

import time
import warnings

import optuna

from digitrec.errors import DigitrecError

STORAGE_ATTEMPTS = 4  # tries to open a storage that another process may be creating
HEARTBEAT_SECONDS = 30  # a trial silent for 3 heartbeats belongs to a dead worker; it is retried
POSTGRES_DRIVER = "postgresql+psycopg"
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgresql+psycopg2")


def driver_url(url: str) -> str:
    """The URL with any PostgreSQL spelling turned into the one driver installed; others as given."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme.lower() in POSTGRES_SCHEMES:
        return f"{POSTGRES_DRIVER}://{rest}"
    return url


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Open (creating if needed) the RDB storage at ``url``, or fail with a clear message.

    SQLite gets a long lock timeout so that several local workers can share the file; every
    worker records a heartbeat, and a trial whose worker died is failed and queued again once.
    Processes that create the same new storage at once race on its tables; the loser tries again.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError

    attempt = 1
    while True:
        try:
            return _rdb_storage(driver_url(url))
        except (IntegrityError, OperationalError) as exc:
            if attempt == STORAGE_ATTEMPTS:
                raise _storage_error(url, exc) from None
        except Exception as exc:  # drivers and servers each fail in their own way
            raise _storage_error(url, exc) from None
        time.sleep(0.5 * attempt)
        attempt += 1


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite:") else {}
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=3 * HEARTBEAT_SECONDS,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(1),
        )


def _storage_error(url: str, exc: Exception) -> DigitrecError:
    if isinstance(exc, ImportError) and driver_url(url).startswith(POSTGRES_DRIVER):
        hint = "its driver is not installed: pip install 'digitrec[scale]' (psycopg 3)"
    else:
        hint = (
            "expected an RDB URL such as sqlite:////abs/path/study.db or "
            "postgresql://USER:PASSWORD@HOST/DB"
        )
    return DigitrecError(
        f"cannot open study storage {masked(url)}: {type(exc).__name__}: {exc}\n{hint}"
    )


def masked(url: str) -> str:
    """The URL with any password hidden, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)
