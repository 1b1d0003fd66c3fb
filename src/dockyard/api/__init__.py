"""The admin REST API, /api/v0 (DTR's shape): ``build_api`` makes the mounted application."""

from __future__ import annotations

from .application import build_api

__all__ = ["build_api"]
