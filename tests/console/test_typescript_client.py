"""The TypeScript client (clients/typescript) in a real browser: its `dialWeb` speaks gRPC-Web
through connect-web and the page's fetch, against the gateway tests/console/run.sh started.

The page is the client's compiled ES modules (clients/typescript/build, from `make test`'s
TypeScript step) and the npm packages they import, loaded through an import map, served by a
small HTTP server on CLIENT_PAGE (a loopback address the gateway lists in
`server.grpc_web.allowed_origins`), so the browser applies CORS and its local-network rules as
for any page.
Checked: a streamed answer rebuilt by `collect`, a unary answer, and a wrong key decoded by
`errorDetails` into its code and `ErrorInfo.reason`.
"""

import http.server
import json
import mimetypes
import os
import pathlib
import threading

PAGE_ADDR = os.environ["CLIENT_PAGE"]
GRPC = os.environ["CONSOLE_GRPC"]
KEY = os.environ["CONSOLE_KEY"]
CLIENT = pathlib.Path(__file__).resolve().parents[2] / "clients" / "typescript"
PREFIX = "/typescript-client/"
PACKAGES = ("@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-web")


def entry(target):
    """The ES module file of one `exports` entry (a path, or conditions to pick from)."""
    if isinstance(target, str):
        return target
    for condition in ("browser", "import", "module", "default"):
        if condition in target and (found := entry(target[condition])):
            return found
    return None


def import_map() -> dict:
    """Bare specifiers → URLs, from each package's `exports`, as a bundler would resolve them."""
    imports = {}
    for package in PACKAGES:
        manifest = json.loads((CLIENT / "node_modules" / package / "package.json").read_text())
        for subpath, target in manifest["exports"].items():
            path = entry(target)
            if path and path.endswith(".js") and "*" not in subpath:
                name = package + subpath[1:]
                imports[name] = f"{PREFIX}node_modules/{package}/{path.removeprefix('./')}"
    return {"imports": imports}


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>TypeScript client</title>
<link rel="icon" href="data:,">
<script type="importmap">{import_map}</script>
<script type="module">
import {{ collect, dialWeb, errorDetails, textOf, userText }} from "{prefix}build/src/web.js";
const base = "http://{grpc}";
const result = {{}};
try {{
  const client = dialWeb(base, {{ apiKey: "{key}" }});
  const streamed = await collect(client.chat.streamChat(
    {{ model: "echo", messages: [userText("hello from a browser")] }}, {{ timeoutMs: 20000 }}));
  result.stream = streamed.text;
  result.finishReason = streamed.finish.reason;
  const unary = await client.chat.chat({{ model: "echo", messages: [userText("one answer")] }});
  result.unary = textOf(unary.message);
  try {{
    await dialWeb(base, {{ apiKey: "not-a-key" }}).chat.chat(
      {{ model: "echo", messages: [userText("refused")] }});
    result.refused = "no error";
  }} catch (error) {{
    const details = errorDetails(error);
    result.refused = {{ code: details.code, reason: details.info?.reason }};
  }}
}} catch (error) {{
  result.failure = String(error);
}}
window.result = result;
</script>
"""


class PageServer(http.server.BaseHTTPRequestHandler):
    """The page, the client's modules and the npm packages, from disk."""

    def do_GET(self):  # noqa: N802 (the standard library's name)
        path = self.path.split("?", 1)[0]
        if not path.startswith(PREFIX):
            return self.answer(404, "text/plain", b"not found")
        path = path.removeprefix(PREFIX)
        if path in ("", "index.html"):
            body = PAGE.format(import_map=json.dumps(import_map()), prefix=PREFIX, grpc=GRPC,
                               key=KEY)
            return self.answer(200, "text/html", body.encode())
        file = (CLIENT / path).resolve()
        if not file.is_relative_to(CLIENT) or not file.is_file():
            return self.answer(404, "text/plain", b"not found")
        kind = "text/javascript" if file.suffix == ".js" else mimetypes.guess_type(file.name)[0]
        return self.answer(200, kind or "application/octet-stream", file.read_bytes())

    def answer(self, status, content_type, body):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_typescript_client_streams_calls_and_decodes_errors_over_grpc_web(browser):
    assert (CLIENT / "build" / "src" / "web.js").is_file(), (
        "clients/typescript/build is missing: `make test` builds it (make ts-build)")
    host, port = PAGE_ADDR.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), PageServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"http://{PAGE_ADDR}{PREFIX}index.html")
        page.wait_for_function("window.result !== undefined", timeout=30_000)
        result = page.evaluate("window.result")
    finally:
        context.close()
        server.shutdown()

    assert "failure" not in result, (result, errors)
    assert result["stream"] == "hello from a browser", result
    assert result["finishReason"] == 1, result  # FinishReason.STOP
    assert result["unary"] == "one answer", result
    # Code.Unauthenticated is 16 in Connect's numbering, as in gRPC's.
    assert result["refused"] == {"code": 16, "reason": "UNAUTHENTICATED"}, result
    assert not errors, errors
