"""`dockyard ca show|export|issue|rotate`: the built-in certificate authority."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..config import ConfigError, Settings, load

if TYPE_CHECKING:
    from cryptography import x509

app = typer.Typer(help="The built-in certificate authority and the server certificate.", no_args_is_help=True)
err = Console(stderr=True)

DataDir = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--data-dir", help="Dockyard's data folder (the CA lives in <data-dir>/ca)."),
]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="YAML configuration file.")]  # noqa: UP045


def _settings(data_dir: Path | None, config: Path | None) -> Settings:
    try:
        return load(config, overrides={"data_dir": str(data_dir) if data_dir is not None else None})
    except ConfigError as e:
        err.print(f"[red]configuration error:[/red] {e}")
        raise typer.Exit(2) from None


def _describe(title: str, cert: x509.Certificate) -> Table:
    from ..ca import fingerprint, sans_of

    table = Table(title=Text(title), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows = [
        ("subject", cert.subject.rfc4514_string()),
        ("issuer", cert.issuer.rfc4514_string()),
        ("SHA-256", fingerprint(cert)),
        ("not after", cert.not_valid_after_utc.isoformat()),
    ]
    sans = sans_of(cert)
    if sans:
        rows.append(("SANs", ", ".join(sans)))
    for field, value in rows:
        # Text, not markup: ":AB:" in a fingerprint would otherwise become an emoji.
        table.add_row(field, Text(value))
    return table


@app.command()
def show(data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Print the CA and server certificates: subject, SHA-256 fingerprint, expiry, names."""
    from cryptography import x509

    settings = _settings(data_dir, config)
    ca_cert = settings.data_dir / "ca" / "ca.crt"
    if not ca_cert.exists():
        err.print(f"no CA in {ca_cert.parent} yet: `dockyard serve` makes one on first start")
        raise typer.Exit(1)
    out = Console()
    out.print(_describe("CA", x509.load_pem_x509_certificate(ca_cert.read_bytes())))
    server_cert = Path(settings.tls.cert_file) if settings.tls.cert_file else settings.data_dir / "ca" / "server.crt"
    if server_cert.exists():
        out.print(_describe(f"server ({server_cert})", x509.load_pem_x509_certificate(server_cert.read_bytes())))
    else:
        out.print("server: no certificate yet (issued on the next HTTPS start)")


@app.command()
def export(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--output", "-o", help="File to write (default: standard output)."),
    ] = None,
) -> None:
    """Write the CA certificate (PEM) for clients to trust; makes the CA if there is none yet."""
    from ..ca import CertificateAuthority, kek_for

    settings = _settings(data_dir, config)
    ca = CertificateAuthority.load_or_create(settings.data_dir, kek_for(settings.data_dir))
    if output is None:
        sys.stdout.buffer.write(ca.pem)
    else:
        output.write_bytes(ca.pem)
        err.print(f"wrote {output}")


@app.command()
def issue(
    name: Annotated[str, typer.Option("--name", help="Common name; also the file names (<name>.crt/.key).")],
    output_dir: Annotated[Path, typer.Option("--output-dir", help="Folder for <name>.crt, <name>.key, ca.crt.")],
    san: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--san", help="DNS name or IP address (repeat for several)."),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Validity (capped at the CA's).")] = 365,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Issue a certificate and key signed by the CA (for a signer, a client, another server)."""
    import datetime

    from cryptography.hazmat.primitives import serialization

    from ..auth.keys import write_private
    from ..ca import CertificateAuthority, kek_for
    from ..ca.authority import plain_pem

    if not name or "/" in name or name.startswith("."):
        err.print(f"[red]--name:[/red] {name!r} cannot be a file name")
        raise typer.Exit(2)
    settings = _settings(data_dir, config)
    ca = CertificateAuthority.load_or_create(settings.data_dir, kek_for(settings.data_dir))
    issued = ca.issue(name, list(san or []), datetime.timedelta(days=days))
    output_dir.mkdir(parents=True, exist_ok=True)
    write_private(output_dir / f"{name}.key", plain_pem(issued.key))
    (output_dir / f"{name}.crt").write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    (output_dir / "ca.crt").write_bytes(ca.pem)
    Console().print(_describe(f"issued {output_dir / (name + '.crt')}", issued.cert))


@app.command()
def rotate(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Make a new CA (the old one moves to ca/previous/) and reissue the server certificate."""
    from ..ca import CertificateAuthority, issue_server_certificate, kek_for

    settings = _settings(data_dir, config)
    if not yes:
        typer.confirm("Every client that trusts the current CA must be given the new one. Rotate the CA?", abort=True)
    kek = kek_for(settings.data_dir)
    ca = CertificateAuthority.create(settings.data_dir, kek)
    out = Console()
    out.print(_describe("new CA", ca.cert))
    if settings.tls.cert_file:
        out.print("server: uses tls.cert_file, not reissued")
    else:
        out.print(_describe("server", issue_server_certificate(ca, settings, kek)))
    out.print("Restart `dockyard serve` to use them, and give clients the new ca.crt.")
