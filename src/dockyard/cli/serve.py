"""`dockyard serve`: build the app and run it under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging

import uvicorn
from rich.console import Console

from ..app import create_app
from ..config import Settings
from ..storage.factory import UnknownDriver


def run(settings: Settings, console: Console) -> None:
    logging.basicConfig(
        level=settings.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        app = create_app(settings)
    except (UnknownDriver, ValueError) as e:
        console.print(f"[red]cannot start:[/red] {e}")
        raise SystemExit(2) from None
    host, port = settings.server.host, settings.server.port
    shown = f"[{host}]" if ":" in host else host
    console.print(f"Dockyard serving http://{shown}:{port}/v2/  (data in {settings.data_dir.absolute()})")
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=settings.server.log_level.lower(),
        timeout_keep_alive=30,
        server_header=False,
        date_header=False,
    )
