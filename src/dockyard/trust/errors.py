"""The trust server's errors, each with notary-server's code and status (spec/notary.md §2.1).

::

    TrustError(code, status, message, detail)     rendered as {"errors": [entry()]}
    ├── MalformedUpload      MALFORMED_UPLOAD      400  body is not multipart/form-data
    ├── NoFilename           NO_FILENAME           400  a part has no file name
    ├── InvalidRole          INVALID_ROLE          400  file name is not a role name
    ├── MalformedJSON        MALFORMED_JSON        400  not a {signed, signatures} document
    ├── InvalidUpdate        INVALID_UPDATE        400  a validation rule failed (detail below)
    ├── OldVersion           VERSION               400  a role version is not newer than the stored one
    ├── InvalidGun           INVALID_GUN           400  GUN is not one of this registry's
    ├── InvalidParameters    INVALID_PARAMETERS    400  bad changefeed parameters
    ├── MetadataNotFound     METADATA_NOT_FOUND    404
    ├── GenericNotFound      GENERIC_NOT_FOUND     404
    └── ServerFault          NO_STORAGE, NO_CRYPTOSERVICE, NO_KEYALGORITHM, UPDATING, UNKNOWN  500

The notary client decodes a 400's single error ``detail`` as a validation error, so
``INVALID_UPDATE`` carries ``{"Name": "ErrBad…", "Error": {"Msg": …}}`` exactly (plus
``"Missing": "snapshot"`` for ``ErrBadHierarchy``); every message names the rule that was broken.
"""

from __future__ import annotations

from typing import Any


class TrustError(Exception):
    """Any refusal of the trust server: a notary error code, its HTTP status, a message."""

    def __init__(self, code: str, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.detail = detail

    def entry(self) -> dict[str, Any]:
        """One item of the registry error envelope."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


class _Coded(TrustError):
    code_name = "UNKNOWN"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(self.code_name, self.http_status, message)


class MalformedUpload(_Coded):
    code_name, http_status = "MALFORMED_UPLOAD", 400


class NoFilename(_Coded):
    code_name, http_status = "NO_FILENAME", 400


class InvalidRole(_Coded):
    code_name, http_status = "INVALID_ROLE", 400


class MalformedJSON(_Coded):
    code_name, http_status = "MALFORMED_JSON", 400


class OldVersion(_Coded):
    code_name, http_status = "VERSION", 400


class InvalidGun(_Coded):
    code_name, http_status = "INVALID_GUN", 400


class InvalidParameters(_Coded):
    code_name, http_status = "INVALID_PARAMETERS", 400


class MetadataNotFound(_Coded):
    code_name, http_status = "METADATA_NOT_FOUND", 404


class GenericNotFound(_Coded):
    code_name, http_status = "GENERIC_NOT_FOUND", 404


class ServerFault(TrustError):
    """A 500 of the server's own making (storage, signer, key algorithm, concurrent update)."""

    CODES = ("NO_STORAGE", "NO_CRYPTOSERVICE", "NO_KEYALGORITHM", "UPDATING", "UNKNOWN")

    def __init__(self, code: str, message: str) -> None:
        if code not in self.CODES:
            raise ValueError(f"{code} is not a server fault code")
        super().__init__(code, 500, message)


# Validation failures: Name is what the notary client switches on.
BAD_ROOT = "ErrBadRoot"
BAD_TARGETS = "ErrBadTargets"
BAD_SNAPSHOT = "ErrBadSnapshot"
BAD_HIERARCHY = "ErrBadHierarchy"
VALIDATION = "ErrValidation"
VALIDATION_NAMES = (BAD_ROOT, BAD_TARGETS, BAD_SNAPSHOT, BAD_HIERARCHY, VALIDATION)


class InvalidUpdate(TrustError):
    """INVALID_UPDATE with ``detail`` in the shape notary's client decodes."""

    def __init__(self, name: str, message: str, missing: str | None = None) -> None:
        if name not in VALIDATION_NAMES:
            raise ValueError(f"{name} is not a notary validation error")
        error: dict[str, Any] = {"Msg": message}
        if missing is not None:
            error["Missing"] = missing
        super().__init__("INVALID_UPDATE", 400, f"{name}: {message}", {"Name": name, "Error": error})
        self.name = name
        self.reason = message
        self.missing = missing
