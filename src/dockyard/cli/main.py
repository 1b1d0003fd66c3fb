"""The `dockyard` command. One module per verb group; this one wires them together."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ..config import ConfigError, load, parse_listen
from .ca import app as ca_app
from .jobs import app as jobs_app
from .jobs import worker
from .signer import app as signer_app
from .storage import app as storage_app

app = typer.Typer(
    name="dockyard",
    help="Dockyard: an on-premises trusted container registry.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
app.add_typer(ca_app, name="ca")
app.add_typer(signer_app, name="signer")
app.add_typer(jobs_app, name="jobs")
app.add_typer(storage_app, name="storage")
app.command()(worker)


@app.command()
def serve(
    data_dir: Annotated[
        Optional[Path], typer.Option("--data-dir", help="Folder for the database, blobs and keys.")  # noqa: UP045
    ] = None,
    listen: Annotated[Optional[str], typer.Option("--listen", help="HOST:PORT to listen on.")] = None,  # noqa: UP045
    config: Annotated[
        Optional[Path], typer.Option("--config", help="YAML configuration file.")  # noqa: UP045
    ] = None,
    admin_password: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--admin-password",
            help="Password of the first admin on an empty database (default: generated and printed once).",
            envvar="DOCKYARD_ADMIN_PASSWORD",
        ),
    ] = None,
    http: Annotated[
        bool, typer.Option("--http", help="Serve plain HTTP instead of HTTPS (loopback scripts and tests).")
    ] = False,
) -> None:
    """Run the registry (embedded default: SQLite and filesystem storage in the data folder)."""
    from .serve import run

    overrides: dict[str, object] = {}
    try:
        if data_dir is not None:
            overrides["data_dir"] = str(data_dir)
        if admin_password:
            overrides["auth.admin_password"] = admin_password
        if http:
            overrides["tls.enabled"] = False
        if listen is not None:
            host, port = parse_listen(listen)
            overrides["server.host"], overrides["server.port"] = host, port
        settings = load(config, overrides=overrides)
    except ConfigError as e:
        console.print(f"[red]configuration error:[/red] {e}")
        raise typer.Exit(2) from None
    run(settings, console)


@app.command("check-config")
def check_config(
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML configuration file.")] = None,  # noqa: UP045
) -> None:
    """Validate the configuration (file + DOCKYARD_* environment) and print it."""
    try:
        settings = load(config)
    except ConfigError as e:
        console.print(f"[red]configuration error:[/red] {e}")
        raise typer.Exit(2) from None
    Console().print(settings)


# Operator verbs on a data folder (dockyard.ops).
from .ops import (  # noqa: E402
    backup,
    destroy,
    emergency_repair,
    gc,
    install,
    nginx_config,
    prune,
    reconfigure,
    restore,
    upgrade,
)

app.command()(install)
app.command()(reconfigure)
app.command()(backup)
app.command()(restore)
app.command()(upgrade)
app.command("emergency-repair")(emergency_repair)
app.command()(destroy)
app.command("nginx-config")(nginx_config)
app.command()(gc)
app.command()(prune)


def main() -> None:
    app()
