"""Where things live inside a storage driver. The whole layout::

    /
    ├── blobs/
    │   └── sha256/
    │       └── <first two hex>/
    │           └── <hex>            the blob's bytes, content-addressed, stored once
    ├── uploads/
    │   └── <upload id>/
    │       └── data                 bytes received so far; moved to blobs/ on commit
    └── _health/
        └── <random>                 16 bytes, written and deleted by the health check (observability.health)

Manifests, tags and repository links live in the metadata database, not here, so
that garbage collection can run online. Repository names never become paths.
"""

from __future__ import annotations

import re

_UPLOAD_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def blob_path(algorithm: str, hex_digest: str) -> str:
    return f"/blobs/{algorithm}/{hex_digest[:2]}/{hex_digest}"


def upload_dir(upload_id: str) -> str:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise ValueError(f"invalid upload id {upload_id!r}")
    return f"/uploads/{upload_id}"


def upload_data_path(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/data"
