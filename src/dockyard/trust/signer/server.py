"""`dockyard signer serve`: the signer as its own process, over mutual TLS only.

The API is the signer's four operations and a health check, JSON with base64 bytes. TLS
requires a client certificate issued by the data folder's CA, so only Dockyard's trust
server (or an operator with such a certificate) can ask for signatures.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ssl
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...coalesce import CoalescingHttpToolsProtocol
from .keystore import KeyStore, LocalSigner
from .service import KeyNotFound, PublicKeyInfo

KEEP_ALIVE_SECONDS = 75


def key_json(info: PublicKeyInfo) -> dict[str, str]:
    return {
        "key_id": info.key_id,
        "algorithm": info.algorithm,
        "public": base64.b64encode(info.public_der).decode(),
        "gun": info.gun,
        "role": info.role,
    }


def _bad(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def build_app(store: KeyStore) -> Starlette:
    signer = LocalSigner.of(store)

    async def create(request: Request) -> Response:
        try:
            body = await request.json()
            gun, role = str(body["gun"]), str(body["role"])
            algorithm = str(body.get("algorithm", "ecdsa"))
            return JSONResponse(key_json(await signer.create_key(gun, role, algorithm)))
        except (ValueError, KeyError, TypeError) as e:
            return _bad(f"create_key: {e}")

    async def get(request: Request) -> Response:
        try:
            return JSONResponse(key_json(await signer.get_key(request.path_params["key_id"])))
        except KeyNotFound:
            return _bad("no such key", 404)

    async def delete(request: Request) -> Response:
        await signer.delete_key(request.path_params["key_id"])
        return Response(status_code=204)

    async def sign(request: Request) -> Response:
        try:
            body = await request.json()
            content = base64.b64decode(body["content"], validate=True)
            signature = await signer.sign(request.path_params["key_id"], content)
        except KeyNotFound:
            return _bad("no such key", 404)
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            return _bad(f"sign: {e}")
        return JSONResponse({"signature": base64.b64encode(signature).decode(), "algorithm": "ecdsa"})

    async def health(request: Request) -> Response:
        await signer.health()
        return JSONResponse({"status": "ok", "keys": store.count()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    return Starlette(
        routes=[
            Route("/keys", create, methods=["POST"]),
            Route("/keys/{key_id}", get, methods=["GET"]),
            Route("/keys/{key_id}", delete, methods=["DELETE"]),
            Route("/keys/{key_id}/sign", sign, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def serve(store: KeyStore, host: str, port: int, cert: str, key: str, password: str, ca: str) -> None:
    import uvicorn

    uvicorn.run(
        build_app(store),
        host=host,
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_keyfile_password=password,
        ssl_ca_certs=ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED,  # mutual TLS: no client certificate from our CA, no connection
        log_level="warning",
        http=CoalescingHttpToolsProtocol,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,  # the trust server reuses its connections (remote.py)
    )
