"""Operator verbs on a data folder: install, reconfigure, backup, restore, upgrade, emergency-repair, destroy.

Plain functions registered on the main app (``dockyard backup …``, as in DTR's bootstrapper);
the work is done in ``dockyard.ops``. Messages and progress go to stderr, results to stdout,
so ``--json`` output can be piped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from ..config import ConfigError, Settings, load
from ..ops._common import OpsError, Progress

T = TypeVar("T")
err = Console(stderr=True)

DataDir = Annotated[Path, typer.Option("--data-dir", help="Dockyard's data folder.")]
ConfigFile = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--config", help="YAML configuration file (storage driver, database URL)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _settings(data_dir: Path, config: Path | None, **overrides: object) -> Settings:
    try:
        return load(config, overrides={"data_dir": str(data_dir), **overrides})
    except ConfigError as e:
        err.print(f"[red]configuration error:[/red] {e}")
        raise typer.Exit(2) from None


def _run(work: Awaitable[T]) -> T:
    try:
        return asyncio.run(work)  # type: ignore[arg-type]
    except OpsError as e:
        err.print(Text.assemble(("error: ", "bold red"), str(e)))
        raise typer.Exit(2) from None


@contextmanager
def _progress(quiet: bool, in_bytes: bool = False) -> Iterator[Progress]:
    """A Rich progress display on stderr, fed through the ops Progress callback."""
    if quiet:
        yield lambda description, advance, total: None
        return
    columns: list[Any] = [TextColumn("{task.description:<18}"), BarColumn()]
    columns += [DownloadColumn()] if in_bytes else [MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    tasks: dict[str, TaskID] = {}
    with RichProgress(*columns, console=err, transient=False) as bar:

        def report(description: str, advance: int, total: int | None) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            elif total is not None:
                bar.update(tasks[description], total=total)
            bar.advance(tasks[description], advance)

        yield report


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=Text(title), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in rows:
        table.add_row(field, Text(value))
    return table


def install(
    data_dir: DataDir,
    admin_password: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--admin-password",
            help="Password of the first admin (default: generated and printed once).",
            envvar="DOCKYARD_ADMIN_PASSWORD",
        ),
    ] = None,
    part: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--part",
            help="Place a part elsewhere: NAME=PATH, NAME one of db, config, registry, ca, trust (repeatable).",
        ),
    ] = None,
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Create or complete a data folder: parts, settings file, CA, database, keys, storage, first admin."""
    from ..ops.install import install as do_install
    from ..ops.install import parse_placement

    settings = _settings(data_dir, config, **{"auth.admin_password": admin_password or None})
    try:
        placements = dict(parse_placement(p) for p in part or [])
    except OpsError as e:
        err.print(Text.assemble(("error: ", "bold red"), str(e)))
        raise typer.Exit(2) from None
    result = _run(do_install(settings, placements))
    if as_json:
        _print_json(
            {
                "data_dir": str(result.data_dir.absolute()),
                "schema_revision": result.schema_revision,
                "admin_created": result.admin_created,
                "admin_password": result.generated_password,
                "ca_fingerprint": result.ca_fingerprint,
                "parts": {name: {"path": str(path), "state": state} for name, (path, state) in result.parts.items()},
            }
        )
        return
    rows = [("data folder", str(result.data_dir.absolute())), ("schema revision", result.schema_revision)]
    rows += [(f"{name}/", f"{path} ({state})") for name, (path, state) in result.parts.items()]
    if result.ca_fingerprint:
        rows.append(("CA sha256", result.ca_fingerprint))
    if result.generated_password:
        rows += [("admin user", "admin"), ("admin password", result.generated_password)]
    elif result.admin_created:
        rows += [("admin user", "admin (password as given)")]
    else:
        rows += [("admin user", "already present: unchanged")]
    Console().print(_table("Dockyard installed", rows))
    if result.generated_password:
        err.print("Keep the password: it is shown only this once.")


def reconfigure(
    data_dir: DataDir,
    assignments: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--set", help="KEY=VALUE, the value read as YAML, e.g. registry.delete_enabled=false."),
    ] = None,
    unsets: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--unset", help="Remove KEY from the folder's settings (back to the default)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Switch storage or database even though data would stay behind.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show the changes; write nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Change the data folder's settings (config/dockyard.yml): validated, previous file kept."""
    from ..ops.reconfigure import reconfigure as do_reconfigure

    result = _run(do_reconfigure(data_dir, assignments or [], unsets or [], force, dry_run))
    if as_json:
        _print_json(
            {
                "path": str(result.path),
                "changes": [{"key": c.key, "before": c.before, "after": c.after} for c in result.changes],
                "previous": str(result.backup) if result.backup else None,
                "written": bool(result.changes) and not dry_run,
                "warnings": result.warnings,
            }
        )
        return
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if not result.changes:
        Console().print("No change: the settings already say that.")
        return
    table = Table(title=f"Changes to {result.path}" + (" (dry run)" if dry_run else ""), title_justify="left")
    for column in ("setting", "before", "after"):
        table.add_column(column, overflow="fold")
    for c in result.changes:
        table.add_row(c.key, Text(_shown(c.key, c.before)), Text(_shown(c.key, c.after)))
    Console().print(table)
    if not dry_run:
        err.print("Written. Restart `dockyard serve` (every replica) to apply.")


def _shown(key: str, value: object) -> str:
    if value is None:
        return "(default)"
    if any(word in key for word in ("password", "secret", "key")) and key not in ("tls.key_file",):
        return "********"
    return json.dumps(value) if not isinstance(value, str) else value


def backup(
    data_dir: DataDir,
    output: Annotated[Path, typer.Option("--output", "-o", help="The tar.gz file to write.")],
    include_images: Annotated[
        bool, typer.Option("--include-images", help="Also archive every blob the metadata references.")
    ] = False,
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Archive the metadata (online snapshot), config/ keys, ca/, trust/ and optionally the images."""
    from ..ops.backup import backup as do_backup

    settings = _settings(data_dir, config)
    with _progress(as_json, in_bytes=True) as progress:
        result = _run(do_backup(settings, output, include_images, progress))
    data = {
        "output": str(result.path),
        "schema_revision": result.schema_revision,
        "files": result.files,
        "blobs": result.blobs,
        "bytes": result.bytes,
        "missing_blobs": result.missing_blobs,
    }
    if as_json:
        _print_json(data)
    else:
        Console().print(_table("Backup written", [(k.replace("_", " "), str(v)) for k, v in data.items()]))
    if result.missing_blobs:
        err.print(
            f"[yellow]warning:[/yellow] {len(result.missing_blobs)} blob(s) missing from storage; see missing_blobs"
        )
    err.print("The archive holds the keys (encrypted with config/master.key, which it also holds): store it securely.")


def restore(
    data_dir: DataDir,
    input_file: Annotated[Path, typer.Option("--input", "-i", help="A tar.gz written by `dockyard backup`.")],
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Restore a backup into an empty (or new) data folder, after verifying every file."""
    from ..ops.backup import restore as do_restore

    settings = _settings(data_dir, config)
    with _progress(as_json, in_bytes=True) as progress:
        result = _run(do_restore(settings, input_file, progress))
    data = {
        "data_dir": str(result.data_dir.absolute()),
        "schema_revision": result.schema_revision,
        "backup_created_at": result.created_at,
        "files": result.files,
        "blobs": result.blobs,
        "bytes": result.bytes,
    }
    if as_json:
        _print_json(data)
    else:
        Console().print(_table("Restored", [(k.replace("_", " "), str(v)) for k, v in data.items()]))
    if not result.include_images:
        err.print("The backup held no images: blobs are served from the configured storage as it is.")


def upgrade(data_dir: DataDir, config: ConfigFile = None, as_json: JsonFlag = False) -> None:
    """Migrate the metadata database to this version's schema (never downgrades)."""
    from ..ops.schema import upgrade as do_upgrade

    settings = _settings(data_dir, config)
    result = _run(_async(do_upgrade, settings.effective_database_url))
    if as_json:
        _print_json({"before": result.before, "after": result.after, "changed": result.changed})
    elif result.changed:
        Console().print(f"Database migrated from {result.before or '(empty)'} to {result.after}.")
    else:
        Console().print(f"Database already at {result.after}: nothing to do.")


async def _async(fn: Any, *args: Any) -> Any:
    return fn(*args)


def emergency_repair(
    data_dir: DataDir,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only; change nothing.")] = False,
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Check metadata against storage and repair: dangling rows, orphan files, stale uploads."""
    from ..ops.repair import emergency_repair as do_repair

    settings = _settings(data_dir, config)
    with _progress(as_json) as progress:
        report = _run(do_repair(settings, dry_run, progress))
    if as_json:
        _print_json(report.as_json())
        return
    out = Console()
    if not report.findings:
        out.print("No findings: metadata and storage agree.")
        return
    table = Table(title="Findings" + (" (dry run: nothing changed)" if dry_run else ""), title_justify="left")
    for column in ("kind", "subject", "detail", "action"):
        table.add_column(column, overflow="fold")
    for f in report.findings:
        table.add_row(f.kind, Text(f.subject), Text(f.detail), f.action)
    out.print(table)


def destroy(
    data_dir: DataDir,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete the data folder: database, keys, certificates and every image. There is no undo."""
    from ..ops.install import destroy as do_destroy
    from ..ops.install import looks_like_data_folder, placed_elsewhere

    if not yes:
        if not looks_like_data_folder(data_dir):
            _run(_async(do_destroy, data_dir))  # reports why it would refuse
        for target in placed_elsewhere(data_dir):
            err.print(f"Also deletes {target} (a part placed elsewhere at install).")
        if not typer.confirm(f"Delete {data_dir.absolute()} and everything in it (images, keys, accounts)?"):
            err.print("Nothing deleted.")
            raise typer.Exit(1)
    _run(_async(do_destroy, data_dir))
    Console().print(f"Deleted {data_dir.absolute()}.")


def nginx_config(
    data_dir: DataDir,
    upstream: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--upstream", help="HOST:PORT of a Dockyard replica (repeatable; default: server.host:port)."),
    ] = None,
    server_name: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--server-name", help="Name clients use (repeatable); also put in nginx's certificate."),
    ] = None,
    listen_address: Annotated[
        str, typer.Option("--listen-address", help="Address nginx listens on (default: all).")
    ] = "",
    https_port: Annotated[int, typer.Option("--https-port", help="HTTPS port.")] = 443,
    http_port: Annotated[int, typer.Option("--http-port", help="Plain-HTTP port redirecting to HTTPS (0: none).")] = 80,
    upstream_http: Annotated[
        bool, typer.Option("--upstream-http", help="The replicas serve plain HTTP (serve --http), whatever tls says.")
    ] = False,
    no_accel: Annotated[
        bool, typer.Option("--no-accel", help="No X-Accel-Redirect: Dockyard sends blob bytes itself.")
    ] = False,
    runtime_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--runtime-dir",
            help="Print a whole nginx.conf (for nginx -c) keeping pid, logs and temp folders here; "
            "default: the part for /etc/nginx/conf.d/.",
        ),
    ] = None,
    user: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--user", help="With --runtime-dir: the workers' user (must read the blobs folder)."),
    ] = None,
    config: ConfigFile = None,
) -> None:
    """Print an nginx configuration for Dockyard: TLS, 80->443, streaming, X-Accel-Redirect for blobs.

    Issues nginx's own certificate from Dockyard's CA into <data-dir>/config/nginx/ (plain key, 0600).
    """
    from ..ops.nginx import prepare, render

    settings = _settings(data_dir, config)
    if runtime_dir is not None:
        runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    options = _run(
        prepare(
            settings,
            upstreams=upstream or [],
            server_names=server_name or [],
            listen_address=listen_address,
            https_port=https_port,
            http_port=http_port,
            upstream_http=upstream_http,
            accel=not no_accel,
            runtime_dir=runtime_dir,
            user=user,
        )
    )
    try:
        text = render(options)
    except OpsError as e:
        err.print(Text.assemble(("error: ", "bold red"), str(e)))
        raise typer.Exit(2) from None
    print(text, end="")
    if options.blobs_dir is None and not no_accel:
        err.print("[yellow]note:[/yellow] the storage driver is not local: Dockyard sends blob bytes itself.")
    err.print(f"nginx presents {options.cert_file}; clients trust {settings.data_dir / 'ca' / 'ca.crt'}.")


def gc(
    data_dir: DataDir,
    grace_period: Annotated[
        float, typer.Option("--grace-period", min=0, help="Seconds: newer manifests, blobs and links are kept.")
    ] = 3600,
    untagged_retention: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--untagged-retention", min=0, help="Seconds to keep untagged manifests (default: forever)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be freed; delete nothing.")] = False,
    pace: Annotated[
        float, typer.Option("--pace", min=0, help="Rest this many times each batch's work time (0: full speed).")
    ] = 3.0,
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Online garbage collection: unreachable manifests and blobs, stale links, abandoned uploads."""
    from ..ops.gc import collect

    settings = _settings(data_dir, config)
    with _progress(as_json) as progress:
        report = _run(collect(settings, grace_period, untagged_retention, dry_run, progress, pace))
    data = report.as_json()
    if as_json:
        _print_json(data)
        return
    title = "Garbage collection" + (" (dry run: nothing deleted)" if dry_run else "")
    Console().print(_table(title, [(k.replace("_", " "), str(v)) for k, v in data.items()]))


def prune(
    data_dir: DataDir,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Apply the tag-pruning policies (lifecycle) of every repository and namespace now."""
    from ..ops.prune import prune as do_prune

    settings = _settings(data_dir, config)
    done = _run(do_prune(settings, dry_run))
    if as_json:
        _print_json([{"repository": r, "tag": t, "rule": rule} for r, t, rule in done])
        return
    table = Table(title=f"{'Would prune' if dry_run else 'Pruned'} {len(done)} tag(s)", title_justify="left")
    for column in ("repository", "tag", "rule"):
        table.add_column(column, overflow="fold")
    for r, t, rule in done:
        table.add_row(Text(r), Text(t), Text(rule))
    Console().print(table)
