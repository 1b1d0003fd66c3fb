"""The trust server's side of a separate signer process: the Signer protocol over mutual TLS."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import httpx

from ...config import Settings
from .service import KeyNotFound, PublicKeyInfo, SignerUnavailable
from .tls import trust_client_credentials


class RemoteSigner:
    def __init__(self, url: str, cert: tuple[str, str, str], ca_file: str) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        context.load_cert_chain(cert[0], cert[1], cert[2])
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), verify=context, timeout=30)

    @classmethod
    def for_settings(cls, settings: Settings) -> RemoteSigner:
        creds = trust_client_credentials(settings.data_dir)
        return cls(
            settings.trust.signer_url, (str(creds.cert_file), str(creds.key_file), creds.password), str(creds.ca_file)
        )

    async def _call(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            r = await self._http.request(method, path, json=json)
        except httpx.HTTPError as e:
            raise SignerUnavailable(f"the signer at {self._http.base_url} does not answer: {e}") from None
        if r.status_code == 404:
            raise KeyNotFound(path)
        if r.status_code >= 400:
            raise SignerUnavailable(f"the signer refused {method} {path}: {r.status_code} {r.text[:200]}")
        return r

    @staticmethod
    def _info(data: dict[str, str]) -> PublicKeyInfo:
        return PublicKeyInfo(
            data["key_id"], data["algorithm"], base64.b64decode(data["public"]), data["gun"], data["role"]
        )

    async def create_key(self, gun: str, role: str, algorithm: str = "ecdsa") -> PublicKeyInfo:
        r = await self._call("POST", "/keys", {"gun": gun, "role": role, "algorithm": algorithm})
        return self._info(r.json())

    async def get_key(self, key_id: str) -> PublicKeyInfo:
        return self._info((await self._call("GET", f"/keys/{key_id}")).json())

    async def delete_key(self, key_id: str) -> None:
        await self._call("DELETE", f"/keys/{key_id}")

    async def sign(self, key_id: str, content: bytes) -> bytes:
        r = await self._call("POST", f"/keys/{key_id}/sign", {"content": base64.b64encode(content).decode()})
        return base64.b64decode(r.json()["signature"])

    async def health(self) -> None:
        await self._call("GET", "/health")

    async def close(self) -> None:
        await self._http.aclose()
