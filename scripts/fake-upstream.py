"""A fake OpenAI-compatible upstream that answers every request with HTTP 429 and
`Retry-After`, so the client suites can see RESOURCE_EXHAUSTED with a google.rpc.RetryInfo.

    python3 scripts/fake-upstream.py PORT_FILE

Binds 127.0.0.1 on a free port, writes the port to PORT_FILE, serves until killed."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RETRY_AFTER_SECONDS = 7


class RateLimited(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {"error": {"message": "Rate limit reached (fake upstream)", "type": "requests", "code": "rate_limit_exceeded"}}
        ).encode()
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RateLimited)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
