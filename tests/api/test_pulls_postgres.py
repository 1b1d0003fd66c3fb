"""Pull counts on PostgreSQL from two replicas sharing it: their batched upserts add up."""

from __future__ import annotations

from pathlib import Path

from tests.api.test_pulls import eventually, today_count
from tests.conftest import ADMIN_PASSWORD, start_server
from tests.helpers import DOCKER_MANIFEST, push_image
from tests.integration.test_postgres import postgres_url  # noqa: F401  (the fixture)

ADMIN = ("admin", ADMIN_PASSWORD)


def test_pull_counts_add_up_across_replicas(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    env = {"DOCKYARD_DATABASE_URL": postgres_url, "DOCKYARD_REGISTRY__PULL_FLUSH_SECONDS": "0.3"}
    data = tmp_path / "data"
    first = start_server(data, extra_env=env, auth=True)
    second = start_server(data, extra_env=env, auth=True)
    try:
        with first.client() as a, second.client() as b:
            a.auth = b.auth = ADMIN
            push_image(a, "admin/pulled", "v1")
            accept = {"Accept": DOCKER_MANIFEST}
            for client, times in ((a, 4), (b, 3)):
                for _ in range(times):
                    assert client.get("/v2/admin/pulled/manifests/v1", headers=accept).status_code == 200

            def counted() -> bool:
                return today_count(a.get("/api/v0/stats").json()["pulls"]) == 7

            eventually(counted)
            tags = b.get("/api/v0/repositories/admin/pulled/tags").json()
            assert tags[0]["lastPulledAt"] is not None and tags[0]["pushedBy"] == "admin"
    finally:
        first.stop()
        second.stop()
