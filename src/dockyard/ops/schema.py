"""`dockyard upgrade`: bring the metadata schema to this version's newest revision.

A database stamped with a revision this code does not know was written by a newer
Dockyard; migrating it "down" would lose data, so it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from ..metadata.db import MIGRATIONS_DIR, Database
from ._common import OpsError


def script_directory() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg)


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "no migrations"
    return head


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def is_known(revision: str | None) -> bool:
    if revision is None:
        return True
    try:
        return script_directory().get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


class NewerDatabase(OpsError):
    pass


def check_not_newer(revision: str | None) -> None:
    if not is_known(revision):
        raise NewerDatabase(
            f"the database is at revision {revision!r}, which this Dockyard does not know (its newest is"
            f" {head_revision()!r}): it was written by a newer version; refusing to downgrade"
        )


@dataclass(frozen=True)
class UpgradeResult:
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def upgrade(database_url: str) -> UpgradeResult:
    db = Database(database_url)
    try:
        before = db.read_sync(current_revision)
        check_not_newer(before)
        db.migrate()
        after = db.read_sync(current_revision)
        assert after is not None
        return UpgradeResult(before, after)
    finally:
        db.dispose()
