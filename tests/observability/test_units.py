"""Pieces without a server: route templates, per-app registries, the JSON formatter, the setting."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, cast

import pytest
from starlette.routing import Mount, Route

from dockyard import config
from dockyard.metadata.db import Database
from dockyard.observability.logs import JsonFormatter, request_id
from dockyard.observability.metrics import Metrics, route_template
from tests.conftest import asgi_get


async def _endpoint(request: Any) -> None:  # pragma: no cover - never called
    return None


def test_route_template() -> None:
    manifests = Route("/v2/{name:path}/manifests/{reference}", _endpoint)
    assert route_template({"route": manifests, "root_path": ""}) == "/v2/{name}/manifests/{reference}"
    assert route_template({}) == "<unmatched>"
    inner = Route("/repositories/{namespace}/{name}", _endpoint)
    mounted = {"route": inner, "root_path": "/api/v0", "app_root_path": ""}
    assert route_template(mounted) == "/api/v0/repositories/{namespace}/{name}"
    behind_proxy = {"route": inner, "root_path": "/registry/api/v0", "app_root_path": "/registry"}
    assert route_template(behind_proxy) == "/api/v0/repositories/{namespace}/{name}"
    mount = Mount("/api/v0", routes=[inner])
    assert route_template({"route": mount, "root_path": "/api/v0"}) == "/api/v0/{path}"


def test_each_app_has_its_own_registry() -> None:
    db = cast(Database, None)  # the database is only read when scraped
    a, b = Metrics(db), Metrics(db)
    a.http.record("GET", "/v2/", 200, 0.001, 0, 2)
    assert b"dockyard_http_requests_total" in a.exposition()
    assert b'route="/v2/"' in a.exposition()
    assert b'route="/v2/"' not in b.exposition()


def _record(msg: str, *args: Any, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("dockyard.test", logging.WARNING, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_json_formatter() -> None:
    fmt = JsonFormatter()
    line = fmt.format(_record("hello %s", "world", status=404))
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["message"] == "hello world"
    assert doc["level"] == "WARNING"
    assert doc["logger"] == "dockyard.test"
    assert doc["time"].endswith("+00:00")
    assert doc["status"] == 404
    assert "request_id" not in doc and "exception" not in doc

    token = request_id.set("abc-1")
    try:
        doc = json.loads(fmt.format(_record("failed", exc=True)))
    finally:
        request_id.reset(token)
    assert doc["request_id"] == "abc-1"
    assert "ValueError: boom" in doc["exception"]
    assert "\n" not in fmt.format(_record("multi\nline", exc=True))


def test_log_format_setting() -> None:
    assert config.load(environ={}).server.log_format == "text"
    assert config.load(environ={"DOCKYARD_SERVER__LOG_FORMAT": "json"}).server.log_format == "json"
    with pytest.raises(config.ConfigError, match="server.log_format"):
        config.load(environ={"DOCKYARD_SERVER__LOG_FORMAT": "xml"})


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_unexpected_error_is_logged_and_counted_with_its_request_id() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from dockyard.middleware import RegistryHeaders
    from dockyard.observability.metrics import HttpCollector
    from dockyard.registry import errors

    async def broken(request: Any) -> None:
        raise RuntimeError("kaput")

    collector = HttpCollector()
    app = Starlette(
        routes=[Route("/v2/{name:path}/tags/list", broken)],
        middleware=[Middleware(RegistryHeaders, metrics=collector)],
        exception_handlers=errors.HANDLERS,
    )
    handler = _ListHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        # Starlette re-raises after answering the 500; the transport keeps the answer.
        r = asgi_get(app, "/v2/some/repo/tags/list", raise_app_exceptions=False)
    finally:
        root.removeHandler(handler)
    assert r.status_code == 500
    # A 500 is answered by Starlette's outermost error middleware, so the id is in the body.
    rid = r.json()["errors"][0]["message"].rsplit(" ", 1)[-1]
    failures = [line for line in handler.lines if "kaput" in line.get("exception", "")]
    assert failures and all(line["request_id"] == rid for line in failures), handler.lines
    assert collector.counts[("GET", "/v2/{name}/tags/list", 500)].requests == 1
