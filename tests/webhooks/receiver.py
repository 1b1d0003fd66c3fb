"""A small webhook receiver for tests: a real HTTP server on a free loopback port, in a
thread, recording every request; it can be told to fail (500) or hang on the next requests to a path."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int  # the status sent back, 0 when the request was left hanging

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    fail_next: dict[str, int] = field(default_factory=dict)  # path: answer this many next requests with 500
    hang_next: dict[str, int] = field(default_factory=dict)  # path: hold this many for hang_seconds, then drop
    hang_seconds: float = 15.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, seconds: float = 30) -> list[Received]:
        wait_until(lambda: len(self.on(path)) >= count, seconds, lambda: f"{self.on(path)}")
        return self.on(path)


def wait_until(check: Callable[[], bool], seconds: float = 30, describe: Callable[[], str] = str) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {seconds} s: {describe()}")


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                if receiver.hang_next.get(self.path, 0) > 0:
                    receiver.hang_next[self.path] -= 1
                    status = 0
                elif receiver.fail_next.get(self.path, 0) > 0:
                    receiver.fail_next[self.path] -= 1
                    status = 500
                else:
                    status = 200
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(Received(self.path, headers, body, status))
            if status == 0:
                time.sleep(receiver.hang_seconds)
                self.close_connection = True
                return
            answer = b"ok" if status == 200 else b"failing on purpose " + b"x" * 10000
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
