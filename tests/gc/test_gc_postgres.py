"""The GC race on PostgreSQL: there the row locks, not one database-wide write lock, keep a
concurrent push and a sweep of the same blob apart."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import start_server
from tests.gc.test_gc import race
from tests.integration.test_postgres import postgres_url  # noqa: F401  (the fixture)

pytestmark = pytest.mark.xdist_group("gc-postgres")


def test_gc_racing_pushes_on_postgres(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    data = tmp_path / "data"
    (data / "config").mkdir(parents=True)
    # The folder's own settings name the database, so `dockyard gc` finds it as the server does.
    (data / "config" / "dockyard.yml").write_text(yaml.safe_dump({"database_url": postgres_url}))
    server = start_server(data)
    try:
        race(server, seconds=15)
    finally:
        server.stop()
