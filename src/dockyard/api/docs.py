"""/docs: Swagger UI on the OpenAPI document, served from this server (the files the
swagger-ui-py package ships: Swagger UI 5, which reads OpenAPI 3.1), so it works on a machine
with no way out, under a Content-Security-Policy that allows no script but our own files.
Swagger UI sets styles inline, hence 'unsafe-inline' for styles only."""

from __future__ import annotations

import importlib.resources

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"
SWAGGER_UI = importlib.resources.files("swagger_ui") / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

# The page's only script is a file of ours (init.js), not inline code.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Dockyard API</title>
<link rel="stylesheet" href="{root}{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="{root}/openapi.json"></div>
<script src="{root}{assets}/swagger-ui-bundle.js"></script>
<script src="{root}/docs-init.js"></script>
</body>
</html>
"""

INIT = """// Starts Swagger UI on the document named by the page (no inline script: see the CSP).
const holder = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({ url: holder.dataset.openapi, dom_id: "#swagger-ui", deepLinking: true });
"""


def add_docs(api: FastAPI) -> None:
    """Serve /docs, /docs-init.js and the Swagger UI files under /docs-assets."""
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

    async def page(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return HTMLResponse(PAGE.format(root=root, assets=ASSETS), headers=headers)

    async def init(request: Request) -> Response:
        return Response(INIT, media_type="text/javascript", headers=headers)

    api.add_route("/docs", page, include_in_schema=False)
    api.add_route("/docs-init.js", init, include_in_schema=False)
    api.mount(ASSETS, StaticFiles(directory=str(SWAGGER_UI)), name="docs-assets")
