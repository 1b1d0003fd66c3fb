"""The trust server's errors, each with notary-server's code and status (spec/notary.md §2.1).

The notary client decodes a 400's single error ``detail`` as a validation error, so
``INVALID_UPDATE`` carries ``{"Name": "ErrBad…", "Error": {"Msg": …}}`` exactly; every
message names the rule that was broken.
"""

from __future__ import annotations

from typing import Any


class TrustError(Exception):
    def __init__(self, code: str, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.detail = detail

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def malformed_upload(message: str) -> TrustError:
    return TrustError("MALFORMED_UPLOAD", 400, message)


def no_filename(message: str) -> TrustError:
    return TrustError("NO_FILENAME", 400, message)


def invalid_role(message: str) -> TrustError:
    return TrustError("INVALID_ROLE", 400, message)


def malformed_json(message: str) -> TrustError:
    return TrustError("MALFORMED_JSON", 400, message)


def invalid_gun(message: str) -> TrustError:
    return TrustError("INVALID_GUN", 400, message)


def invalid_parameters(message: str) -> TrustError:
    return TrustError("INVALID_PARAMETERS", 400, message)


def metadata_not_found(message: str) -> TrustError:
    return TrustError("METADATA_NOT_FOUND", 404, message)


def old_version(message: str) -> TrustError:
    return TrustError("VERSION", 400, message)


def no_cryptoservice(message: str) -> TrustError:
    return TrustError("NO_CRYPTOSERVICE", 500, message)


# Validation failures: Name is what the notary client switches on.
BAD_ROOT = "ErrBadRoot"
BAD_TARGETS = "ErrBadTargets"
BAD_SNAPSHOT = "ErrBadSnapshot"
BAD_HIERARCHY = "ErrBadHierarchy"
VALIDATION = "ErrValidation"


def invalid_update(name: str, message: str, missing: str | None = None) -> TrustError:
    error: dict[str, Any] = {"Msg": message}
    if missing is not None:
        error["Missing"] = missing
    return TrustError("INVALID_UPDATE", 400, f"{name}: {message}", {"Name": name, "Error": error})
