"""JSON logs on a real server: one object per line, the access log carrying the request id."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.conftest import start_server


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_access_log_in_json_with_request_id(tmp_path: Path) -> None:
    s = start_server(
        tmp_path / "data",
        extra_env={"DOCKYARD_SERVER__LOG_FORMAT": "json", "DOCKYARD_SERVER__ACCESS_LOG": "true"},
    )
    try:
        with s.client() as http:
            r = http.get("/v2/no/such/manifests/latest")
            assert r.status_code == 404
            rid = r.headers["x-request-id"]
        deadline = time.monotonic() + 5
        while True:
            lines = json_lines(s.log_path)
            mine = [line for line in lines if line.get("request_id") == rid]
            if mine or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        s.stop()
    assert len(mine) == 1, lines
    (access,) = mine
    assert access["logger"] == "dockyard.access"
    assert access["level"] == "INFO"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/v2/no/such/manifests/latest", 404)
    assert rid in access["message"]
    assert {"time", "message"} <= access.keys()
    # uvicorn's own records go through the same formatter.
    assert any(line["logger"].startswith("uvicorn") for line in lines), lines
    text = s.log_path.read_text()
    assert not any(line.startswith(("INFO:", "INFO ")) for line in text.splitlines()), text
