"""A fake OpenAI-compatible upstream for the client and SDK suites: a request for model
`gpt-cut` gets a streamed answer that breaks after two content chunks (no [DONE]), one for
`gpt-overloaded` gets HTTP 529 (an overloaded provider); every
other request gets HTTP 429 with `Retry-After`, so the suites see RESOURCE_EXHAUSTED with a
google.rpc.RetryInfo (or the HTTP API's 429 with Retry-After).

    python3 scripts/fake-upstream.py PORT_FILE

Binds 127.0.0.1 on a free port, writes the port to PORT_FILE, serves until killed."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RETRY_AFTER_SECONDS = 7


class RateLimited(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = self.rfile.read(length) if length else b""
        try:
            model = json.loads(request or b"{}").get("model")
        except ValueError:
            model = None
        if model == "gpt-cut":
            self._cut_stream()
            return
        if model == "gpt-overloaded":
            self._overloaded()
            return
        body = json.dumps(
            {"error": {"message": "Rate limit reached (fake upstream)", "type": "requests", "code": "rate_limit_exceeded"}}
        ).encode()
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _overloaded(self) -> None:
        """HTTP 529, the status of an overloaded provider."""
        body = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (fake upstream)"}}).encode()
        self.send_response(529)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _cut_stream(self) -> None:
        """Two content chunks of an SSE stream, then the connection breaks."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for text in ("Hello", " wor"):
            chunk = {
                "id": "chatcmpl-cut",
                "object": "chat.completion.chunk",
                "model": "gpt-cut",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

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
