"""A tiny real HTTP server a test Deployment runs through the pod bridge (env-driven like mdserve).

Listens on MDSERVE_HOST:MDSERVE_HTTP_PORT. `GET /` answers its pid and environment, `GET /ready` 200,
`GET /metrics` a Prometheus counter. With ECHO_EXIT_CODE set it exits at once with that code (a broken
model server). With ECHO_READY_FILE set, `GET /ready` answers 503 while that file does not exist (a model
still loading); `GET /` counts the readiness probes answered so far.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUESTS = 0
PROBES = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        global REQUESTS, PROBES
        REQUESTS += 1
        if self.path == "/metrics":
            body = f"# TYPE echo_requests_total counter\necho_requests_total {REQUESTS}\n".encode()
            kind = "text/plain; version=0.0.4"
        elif self.path == "/ready":
            PROBES += 1
            gate = os.environ.get("ECHO_READY_FILE")
            if gate and not os.path.exists(gate):
                self.send_error(503, "not ready")
                return
            body, kind = b"ok\n", "text/plain"
        elif self.path == "/":
            body = json.dumps({"pid": os.getpid(), "argv": sys.argv[1:], "env": dict(os.environ),
                               "probes": PROBES}).encode()
            kind = "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the log for start-up and crashes


def main() -> int:
    if os.environ.get("ECHO_EXIT_CODE"):
        print("echo: configured to fail", flush=True)
        return int(os.environ["ECHO_EXIT_CODE"])
    host = os.environ.get("MDSERVE_HOST", "0.0.0.0")
    port = int(os.environ.get("MDSERVE_HTTP_PORT", "8080"))
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"echo: listening on {host}:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
