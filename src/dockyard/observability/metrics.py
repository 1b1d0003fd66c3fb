"""Prometheus metrics: one ``CollectorRegistry`` per app, served at ``GET /metrics``.

HTTP metrics are labelled by route *template* (``/v2/{name}/manifests/{reference}``), never
the raw path, so their number stays bounded. The request-id middleware (``middleware.RegistryHeaders``,
already wrapping every response) times each request, counts its body bytes and hands them to
``HttpCollector.observe``, which keeps plain Python counts updated on the event loop (no locks,
no label look-ups per request) and turns them into metric families only when Prometheus
scrapes: the manifest GET hot path pays about a microsecond.

Metric names::

    dockyard_http_requests_total{method,route,status}          counter
    dockyard_http_request_duration_seconds{method,route}       histogram
    dockyard_http_request_bytes_total{method,route}            counter (request bodies received)
    dockyard_http_response_bytes_total{method,route}           counter (response bodies sent)
    dockyard_uploads_in_progress                               gauge (open upload sessions)
    dockyard_storage_blob_bytes / dockyard_storage_blobs       gauges (refreshed at most every 30 s)
    process_* / python_info                                    the client library's standard collectors
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Scope

from ..metadata import models
from ..metadata.db import Database

log = logging.getLogger("dockyard.metrics")

# Upper bounds in seconds; a registry answers most requests in well under a millisecond,
# while blob uploads and downloads take seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STORAGE_REFRESH_SECONDS = 30.0
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
UNMATCHED = "<unmatched>"


class _Counts:
    """Everything counted for one (method, route template, status)."""

    __slots__ = ("requests", "seconds", "buckets", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.requests = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.bytes_in = 0
        self.bytes_out = 0


class HttpCollector(Collector):
    """The HTTP counts, exposed as metric families at scrape time."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], _Counts] = {}

    def observe(self, scope: Scope, status: int, seconds: float, bytes_in: int, bytes_out: int) -> None:
        """Count one finished HTTP request (called by ``middleware.RegistryHeaders``); status 0 =
        the client went away before a response started (counted as 499)."""
        method: str = scope["method"]
        if method not in _METHODS:
            method = "other"
        self.record(method, route_template(scope), status or 499, seconds, bytes_in, bytes_out)

    def record(self, method: str, route: str, status: int, seconds: float, bytes_in: int, bytes_out: int) -> None:
        key = (method, route, status)
        c = self.counts.get(key)
        if c is None:
            c = self.counts[key] = _Counts()
        c.requests += 1
        c.seconds += seconds
        c.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        c.bytes_in += bytes_in
        c.bytes_out += bytes_out

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "dockyard_http_requests",
            "HTTP requests by method, route template and status.",
            labels=["method", "route", "status"],
        )
        by_route: dict[tuple[str, str], _Counts] = {}
        for (method, route, status), c in list(self.counts.items()):
            requests.add_metric([method, route, str(status)], c.requests)
            total = by_route.get((method, route))
            if total is None:
                total = by_route[(method, route)] = _Counts()
            total.requests += c.requests
            total.seconds += c.seconds
            total.bytes_in += c.bytes_in
            total.bytes_out += c.bytes_out
            for i, n in enumerate(c.buckets):
                total.buckets[i] += n
        duration = HistogramMetricFamily(
            "dockyard_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            labels=["method", "route"],
        )
        bytes_in = CounterMetricFamily(
            "dockyard_http_request_bytes", "Request body bytes received.", labels=["method", "route"]
        )
        bytes_out = CounterMetricFamily(
            "dockyard_http_response_bytes", "Response body bytes sent.", labels=["method", "route"]
        )
        for (method, route), total in by_route.items():
            cumulative, running = [], 0
            for bound, n in zip((*map(str, BUCKETS), "+Inf"), total.buckets, strict=True):
                running += n
                cumulative.append((bound, running))
            duration.add_metric([method, route], cumulative, total.seconds)
            bytes_in.add_metric([method, route], total.bytes_in)
            bytes_out.add_metric([method, route], total.bytes_out)
        yield requests
        yield duration
        yield bytes_in
        yield bytes_out

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the families' names are not known before the first request


def route_template(scope: Scope) -> str:
    """The matched route's path template (Starlette puts the route in ``scope["route"]``),
    prefixed with the mount it lives under; ``<unmatched>`` when no route matched."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    template: str = getattr(route, "path_format", UNMATCHED)
    if isinstance(route, Mount):
        return template  # a mounted app that matched nothing below it
    root: str = scope.get("root_path", "")
    if root:
        # Below a Mount, root_path is the top-level root_path plus the mount's path.
        return root[len(scope.get("app_root_path", "")) :] + template
    return template


def _storage_usage(conn: Connection) -> tuple[int, int]:
    row = conn.execute(select(func.count(), func.coalesce(func.sum(models.blobs.c.size), 0))).one()
    return int(row[0]), int(row[1])


def _open_uploads(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(models.uploads)).scalar_one())


class Metrics:
    """The app's registry and the gauges refreshed from the database when scraped."""

    def __init__(self, db: Database, storage_refresh_seconds: float = STORAGE_REFRESH_SECONDS) -> None:
        self.db = db
        self.registry = CollectorRegistry()
        self.http = HttpCollector()
        self.registry.register(self.http)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.uploads_in_progress = Gauge(
            "dockyard_uploads_in_progress", "Upload sessions started and not yet finished.", registry=self.registry
        )
        self.storage_blob_bytes = Gauge(
            "dockyard_storage_blob_bytes", "Bytes of blobs in storage (from the metadata).", registry=self.registry
        )
        self.storage_blobs = Gauge("dockyard_storage_blobs", "Blobs in storage.", registry=self.registry)
        self.storage_refresh_seconds = storage_refresh_seconds
        self._storage_refreshed: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Update the database-backed gauges; storage usage at most every storage_refresh_seconds.
        A failure keeps the last values (and is logged): a scrape never fails for it."""
        async with self._lock:
            try:
                self.uploads_in_progress.set(await self.db.read(_open_uploads))
                now = time.monotonic()
                if self._storage_refreshed is None or now - self._storage_refreshed >= self.storage_refresh_seconds:
                    blobs, size = await self.db.read(_storage_usage)
                    self.storage_blobs.set(blobs)
                    self.storage_blob_bytes.set(size)
                    self._storage_refreshed = now
            except Exception:
                log.exception("could not refresh the metrics from the database")

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    await metrics.refresh()
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


ROUTES: list[BaseRoute] = [Route("/metrics", metrics_endpoint, methods=["GET"])]

__all__ = ["BODY_METHODS", "HttpCollector", "Metrics", "ROUTES", "route_template"]
