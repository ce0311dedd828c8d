"""A local HTTP server on 127.0.0.1 for the web-client tests: scripted answers per path, every request recorded."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    content_length: int | None = None  # to announce more bytes than are sent (truncated transfer)
    drip: float = 0.0  # seconds between body bytes, sent one at a time (a slow-drip server)


@dataclass
class Request:
    path: str
    query: dict
    headers: dict


class FakeWeb:
    """routes: path -> list of Answers, served in order (the last one repeats)."""

    def __init__(self):
        self.routes: dict[str, list[Answer]] = {}
        self.requests: list[Request] = []
        self.dynamic = None  # optional callable(Request) -> Answer | None, tried before routes
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                request = Request(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}, dict(self.headers))
                fake.requests.append(request)
                answer = fake.dynamic(request) if fake.dynamic else None
                if answer is None:
                    queue = fake.routes.get(parts.path)
                    if not queue:
                        answer = Answer(404, b"not found")
                    else:
                        answer = queue.pop(0) if len(queue) > 1 else queue[0]
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    length = answer.content_length if answer.content_length is not None else len(answer.body)
                    self.send_header("Content-Length", str(length))
                    self.end_headers()
                    if answer.drip:
                        for i in range(len(answer.body)):
                            self.wfile.write(answer.body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(answer.drip)
                    else:
                        self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if answer.content_length is not None:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeWeb":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]
