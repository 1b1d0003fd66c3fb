"""`dockyard storage …`: move a data folder's blobs to another storage backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..ops._common import OpsError
from .ops import ConfigFile, DataDir, JsonFlag, _print_json, _progress, _run, _settings, _table, err

app = typer.Typer(help="Storage backends: migrate blobs to another one.", no_args_is_help=True)


@app.command()
def migrate(
    data_dir: DataDir,
    to: Annotated[
        Path,
        typer.Option(
            "--to",
            exists=True,
            dir_okay=False,
            help="YAML with the target's storage block (a whole configuration, or just driver: and params:).",
        ),
    ],
    config: ConfigFile = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Blobs copied at once.")] = 4,
    verify_existing: Annotated[
        bool, typer.Option("--verify-existing", help="Re-read blobs already at the target and check their digests.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Copy every blob to the target backend, verifying digests; run again to resume.

    Then switch with `dockyard reconfigure --set storage.driver=... --set storage.params.KEY=...`."""
    from ..ops.migrate import migrate as do_migrate
    from ..ops.migrate import target_settings

    settings = _settings(data_dir, config)
    try:
        target = target_settings(to)
    except OpsError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    with _progress(as_json, in_bytes=True) as progress:
        report = _run(do_migrate(settings, target, progress, concurrency=concurrency, verify_existing=verify_existing))
    if as_json:
        _print_json(report.as_json())
    else:
        rows = [
            ("target", report.target),
            ("blobs", str(report.blobs)),
            ("copied", f"{report.copied} ({report.bytes_copied} bytes)"),
            ("already there", str(report.skipped)),
            ("missing at the source", ", ".join(report.missing_at_source) or "none"),
            ("digest mismatches", ", ".join(report.corrupt) or "none"),
        ]
        Console().print(_table("Storage migration", rows))
        if report.ok:
            switch = f"dockyard reconfigure --data-dir {data_dir} --set storage.driver={target.driver} ..."
            err.print(f"done: switch with `{switch}`", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
