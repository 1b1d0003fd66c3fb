"""What every operator verb needs: the data folder's parts and a progress callback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from ..config import Settings
from ..storage.checked import CheckedDriver
from ..storage.factory import create_driver

# progress(description, advance, total): total is set when known, advance counts units done.
Progress = Callable[[str, int, int | None], None]


def no_progress(description: str, advance: int, total: int | None) -> None:
    return None


class OpsError(Exception):
    """A refusal or failure the CLI reports as a one-line message (exit code 2)."""


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file of the metadata database; OpsError for a server database."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise OpsError(
            f"the database is {url.get_backend_name()}: back it up with its own tools (e.g. pg_dump);"
            " only the embedded SQLite database is handled here"
        )
    return Path(url.database)


def driver_for(settings: Settings) -> CheckedDriver:
    try:
        return create_driver(settings.storage.driver, settings.storage.params, str(settings.data_dir))
    except ValueError as e:
        raise OpsError(str(e)) from None
