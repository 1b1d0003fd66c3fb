"""``GET /ca``: the root certificate clients should trust, without authentication."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response


async def ca_certificate(request: Request) -> Response:
    pem: bytes | None = request.app.state.ca_certificate
    if pem is None:
        return PlainTextResponse("no built-in CA: this server's certificate is the operator's own\n", 404)
    return Response(
        pem,
        media_type="application/x-pem-file",
        headers={"Content-Disposition": 'attachment; filename="ca.crt"'},
    )
