"""A keep-alive HTTP/1.1 backend that says how many connections it has accepted.

Started per client connection by the process provider in test_provision_http:
``GET /health`` answers ``ok``; any other GET answers ``connections=N``, so a
test can tell whether pointsman reused its upstream connection.

    python counting_app.py PORT
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCEPTED = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        global ACCEPTED
        ACCEPTED += 1
        super().setup()

    def do_GET(self) -> None:
        body = b"ok\n" if self.path == "/health" else f"connections={ACCEPTED}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
