"""Serves the web UI: the app shell at ``/`` and its assets under ``/ui/``, with a strict
Content-Security-Policy. No templates, no inline code: every page is drawn in the browser
from /api/v0, the API scripts use, so the UI has no back door of its own."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

# Only our own files: no inline scripts or styles (so injected markup cannot run), no
# framing (clickjacking), no plug-ins, forms and fetches to this origin only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),  # for browsers that ignore frame-ancestors
)


class SecurityHeaders:
    """Adds the UI's security headers to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def shell(request: Request) -> Response:
    # The shell is tiny and changes with each release: never cached, always revalidated.
    headers = {k.decode(): v.decode() for k, v in SECURITY_HEADERS}
    return FileResponse(STATIC / "index.html", headers={**headers, "Cache-Control": "no-cache"})


ROUTES = [
    Route("/", shell, methods=["GET", "HEAD"]),
    Mount("/ui", app=SecurityHeaders(StaticFiles(directory=STATIC)), name="ui"),
]
