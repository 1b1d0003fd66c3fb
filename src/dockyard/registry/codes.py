"""Every error code of the distribution API, declared once, and the one exception type
services raise. ``errors.render`` alone turns them into the spec's JSON envelope.

    RegistryError(code, message, detail)
    └── raised anywhere below the route; `code` is one of the ErrorCode constants
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorCode:
    value: str
    status: int
    message: str


BLOB_UNKNOWN = ErrorCode("BLOB_UNKNOWN", 404, "blob unknown to registry")
BLOB_UPLOAD_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
BLOB_UPLOAD_UNKNOWN = ErrorCode("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
DIGEST_INVALID = ErrorCode("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
MANIFEST_BLOB_UNKNOWN = ErrorCode("MANIFEST_BLOB_UNKNOWN", 400, "manifest references a blob unknown to the registry")
MANIFEST_INVALID = ErrorCode("MANIFEST_INVALID", 400, "manifest invalid")
MANIFEST_UNKNOWN = ErrorCode("MANIFEST_UNKNOWN", 404, "manifest unknown")
NAME_INVALID = ErrorCode("NAME_INVALID", 400, "invalid repository name")
NAME_UNKNOWN = ErrorCode("NAME_UNKNOWN", 404, "repository name not known to registry")
SIZE_INVALID = ErrorCode("SIZE_INVALID", 400, "provided length did not match content length")
UNAUTHORIZED = ErrorCode("UNAUTHORIZED", 401, "authentication required")
DENIED = ErrorCode("DENIED", 403, "requested access to the resource is denied")
UNSUPPORTED = ErrorCode("UNSUPPORTED", 405, "the operation is unsupported")
TOOMANYREQUESTS = ErrorCode("TOOMANYREQUESTS", 429, "too many requests")
RANGE_INVALID = ErrorCode("RANGE_INVALID", 416, "invalid content range")
PAGINATION_NUMBER_INVALID = ErrorCode("PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested")
TAG_INVALID = ErrorCode("TAG_INVALID", 400, "manifest tag did not match URI")
UNAVAILABLE = ErrorCode("UNAVAILABLE", 503, "service unavailable")
UNKNOWN = ErrorCode("UNKNOWN", 500, "unknown error")
# Not a spec code: 413 for a manifest over the size limit, as spec v1.1 recommends.
SIZE_TOO_LARGE = ErrorCode("MANIFEST_INVALID", 413, "manifest too large")
# A route that does not exist under /v2/.
NOT_FOUND = ErrorCode("NOT_FOUND", 404, "no such endpoint")
METHOD_NOT_ALLOWED = ErrorCode("UNSUPPORTED", 405, "method not allowed on this endpoint")


class RegistryError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or code.message)
        self.code = code
        self.message = message or code.message
        self.detail = detail
        self.headers = headers or {}
        self.extra: list[RegistryError] = []  # further errors reported in the same envelope

    def also(self, other: RegistryError) -> RegistryError:
        self.extra.append(other)
        return self

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for e in (self, *self.extra):
            entry: dict[str, Any] = {"code": e.code.value, "message": e.message}
            if e.detail is not None:
                entry["detail"] = e.detail
            out.append(entry)
        return out
