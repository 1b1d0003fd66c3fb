"""`dockyard signer serve|rotate-passphrase`: the signer as its own process, and its passphrase."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ..config import ConfigError, Settings, load, parse_listen

app = typer.Typer(help="The signer: holds the timestamp and snapshot keys of content trust.", no_args_is_help=True)
err = Console(stderr=True)

DataDir = Annotated[Path, typer.Option("--data-dir", help="Dockyard's data folder (its ca/ and trust/).")]
PassphraseFile = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--passphrase-file", help="File holding the keystore passphrase (else DOCKYARD_SIGNER_PASSPHRASE)."),
]


def _settings(data_dir: Path, passphrase_file: Path | None) -> Settings:
    overrides: dict[str, object] = {"data_dir": str(data_dir)}
    if passphrase_file is not None:
        overrides["trust.signer_passphrase_file"] = str(passphrase_file)
    try:
        return load(overrides=overrides)
    except ConfigError as e:
        err.print(f"[red]configuration error:[/red] {e}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    data_dir: DataDir,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to listen on.")] = "127.0.0.1:7899",
    passphrase_file: PassphraseFile = None,
) -> None:
    """Run the signer over mutual TLS; point the server at it with trust.signer_url."""
    from ..trust.signer.keystore import WrongPassphrase
    from ..trust.signer.server import serve as run
    from ..trust.signer.setup import open_keystore
    from ..trust.signer.tls import signer_server_credentials

    settings = _settings(data_dir, passphrase_file)
    try:
        host, port = parse_listen(listen)
        store = open_keystore(settings)
    except (ConfigError, WrongPassphrase) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    creds = signer_server_credentials(settings.data_dir, host)
    err.print(f"signer listening on https://{listen} (mutual TLS, clients need a certificate from {creds.ca_file})")
    run(store, host, port, str(creds.cert_file), str(creds.key_file), creds.password, str(creds.ca_file))


@app.command("rotate-passphrase")
def rotate_passphrase(
    data_dir: DataDir,
    passphrase_file: PassphraseFile = None,
    new_passphrase_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--new-passphrase-file", help="File with the new passphrase (else DOCKYARD_SIGNER_NEW_PASSPHRASE)."
        ),
    ] = None,
) -> None:
    """Re-seal every signer key under a new passphrase (the current one is needed to open them)."""
    from ..trust.signer.keystore import WrongPassphrase
    from ..trust.signer.setup import open_keystore

    new = (
        new_passphrase_file.read_text().strip()
        if new_passphrase_file
        else os.environ.get("DOCKYARD_SIGNER_NEW_PASSPHRASE", "")
    )
    if len(new) < 12:
        err.print("[red]error:[/red] the new passphrase must have at least 12 characters")
        raise typer.Exit(2)
    settings = _settings(data_dir, passphrase_file)
    try:
        store = open_keystore(settings)
    except (ConfigError, WrongPassphrase) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    count = store.rotate_passphrase(new)
    store.close()
    Console().print(f"Re-sealed {count} key(s) under the new passphrase. Configure it before the next start.")
