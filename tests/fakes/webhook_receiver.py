"""A clinic's webhook endpoint for tests: records every POST and answers as told, over real HTTP.

::

    with WebhookReceiver() as receiver:
        receiver.answer([500, {"status": 503, "retry_after": 120}, {"delay": 2}])  # then 200s
        ...
        receiver.posts()  # [Post(headers={...}, body=b"..."), ...]

``WebhookReceiver(latency=0.2, jitter=0.05)`` answers every POST after 200 ± 50 ms, like an endpoint
across the internet (the benchmark uses it: an instant receiver hides the real cost of waiting).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1; ``url`` is its ``/hooks`` endpoint."""

    def __init__(self, latency: float = 0.0, jitter: float = 0.0) -> None:
        self._posts: list[Post] = []
        self._answers: deque[int | dict[str, Any]] = deque()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver._posts.append(Post(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    answer = receiver._answers.popleft() if receiver._answers else 200
                spec = answer if isinstance(answer, dict) else {"status": answer}
                wait = spec.get("delay") or max(0.0, latency + random.uniform(-jitter, jitter))
                if wait:
                    time.sleep(wait)
                try:
                    if spec.get("drip"):  # the status line one byte at a time, every ``drip`` seconds
                        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(spec["drip"])
                        return
                    self.send_response(spec.get("status", 200))
                    if spec.get("retry_after") is not None:
                        self.send_header("Retry-After", str(spec["retry_after"]))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, *_args: Any) -> None:
                pass

        ThreadingHTTPServer.request_queue_size = 128  # many posts at once: no resets from a full backlog
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks"

    def answer(self, answers: list[int | dict[str, Any]]) -> None:
        """Queue answers for the next POSTs (a status, or ``{"status", "retry_after", "delay", "drip"}``); then 200.

        ``drip``: send the answer a byte at a time, that many seconds apart (each read is quick; the whole is not).
        """
        with self._lock:
            self._answers.extend(answers)

    def posts(self) -> list[Post]:
        with self._lock:
            return list(self._posts)

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
