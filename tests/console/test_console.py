"""The operator console in a real browser: Playwright drives Debian's Chromium against the
gateway that tests/console/run.sh started (client keys on; route `echo` on the echo provider,
route `flaky` on an upstream that answers 529). Calls made outside the browser go through
grpcurl, a real gRPC client, so the page is checked against the gateway, not against itself.

Environment: CONSOLE_URL (the admin port), CONSOLE_GRPC (host:port of the gRPC port),
CONSOLE_KEY (a valid client key), CHROMIUM (the browser), and optionally CONSOLE_SCREENSHOTS
(a folder to save screenshots of the console into).
"""

import json
import os
import pathlib
import subprocess
import time
import urllib.request

import pytest
from playwright.sync_api import Page, expect

URL = os.environ["CONSOLE_URL"]
GRPC = os.environ["CONSOLE_GRPC"]
KEY = os.environ["CONSOLE_KEY"]
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


def requests_total(front_door: str, method: str, code: str) -> float:
    """The gateway's own count of finished calls with these labels (route and provider echo,
    or none for a call refused before routing), from the admin port's /metrics."""
    with urllib.request.urlopen(URL + "/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ai_service_requests_total{") and all(
            f'{k}="{v}"' in line for k, v in
            (("front_door", front_door), ("method", method), ("code", code))
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for_requests_total(front_door: str, method: str, code: str, expected: float) -> None:
    """Waits up to 5 s: a call's record may land just after its last byte reached the page."""
    deadline = time.monotonic() + 5
    while (seen := requests_total(front_door, method, code)) != expected:
        assert time.monotonic() < deadline, f"{front_door} {method} {code}: {seen} != {expected}"
        time.sleep(0.1)


def grpcurl(method: str, body: dict, key: str = KEY) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["grpcurl", "-plaintext", "-H", f"authorization: Bearer {key}", "-d", json.dumps(body),
         GRPC, f"aiservice.v1.ChatService/{method}"],
        capture_output=True, text=True, timeout=30, check=False,
    )


@pytest.fixture()
def page(browser):
    """A fresh page on the console; fails the test if the page logged any error."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(URL + "/")
    expect(page.locator("#status")).to_contain_text("updated")
    yield page
    context.close()
    assert errors == [], f"the console logged errors: {errors}"


def shot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        folder = pathlib.Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / name), full_page=True)


def test_the_console_loads_without_errors_and_shows_the_build(page: Page):
    expect(page).to_have_title("ai-service console")
    expect(page.locator("#version")).to_contain_text("v")
    config = page.locator("#config")
    expect(config).to_contain_text("flaky")
    # The client key's digest is masked like every secret.
    expect(config).to_contain_text("sha256: '***'")
    assert KEY not in page.content()
    # With client keys on, the playground asks for one.
    expect(page.locator("#key")).to_be_visible()


def test_the_route_table_matches_list_models(page: Page):
    listed = grpcurl("ListModels", {})
    assert listed.returncode == 0, listed.stderr
    names = [m["name"] for m in json.loads(listed.stdout)["models"]]
    assert names == ["echo", "flaky"]
    rows = page.locator("#routes tbody tr")
    expect(rows).to_have_count(len(names))
    shown = [rows.nth(i).get_attribute("data-route") for i in range(rows.count())]
    assert shown == names


def test_the_charts_move_after_calls(page: Page):
    chart = page.locator("#chart-rate")
    before = float(chart.get_attribute("data-sum") or 0)
    for i in range(5):
        reply = grpcurl("Chat", {"model": "echo", "messages": [
            {"role": "ROLE_USER", "content": [{"text": f"chart call {i}"}]}]})
        assert reply.returncode == 0, reply.stderr
    page.wait_for_function(
        "before => Number(document.getElementById('chart-rate').dataset.sum) > before",
        arg=before, timeout=10_000,
    )
    page.wait_for_function(
        "() => Number(document.getElementById('chart-latency').dataset.points) > 0",
        timeout=10_000,
    )
    expect(page.locator("#totals")).not_to_contain_text("calls since start: 0,")


def test_an_ejected_endpoint_shows_as_ejected(page: Page):
    row = page.locator('#routes tbody tr[data-route="flaky"]')
    expect(row).to_have_attribute("data-state", "ok")
    failed = grpcurl("Chat", {"model": "flaky", "messages": [
        {"role": "ROLE_USER", "content": [{"text": "eject me"}]}]})
    assert failed.returncode != 0 and "Unavailable" in failed.stderr, failed.stderr
    expect(row).to_have_attribute("data-state", "ejected", timeout=10_000)
    expect(row.locator("td.state")).to_have_text("ejected")
    expect(page.locator('#routes tbody tr[data-route="echo"]')).to_have_attribute("data-state", "ok")
    shot(page, "console.png")


def test_a_playground_message_streams_in_through_grpc_web(page: Page):
    before = requests_total("grpc_web", "StreamChat", "OK")
    page.fill("#key", KEY)
    page.locator("#key").dispatch_event("change")
    expect(page.locator("#model option")).to_have_count(2)
    page.select_option("#model", "echo")
    text = "one two three four five six seven eight"
    page.fill("#message", text)
    page.click("#send")
    answer = page.locator("#answer")
    # Echo sends a word every 50 ms: the answer is seen part-way before it is complete.
    page.wait_for_function(
        "() => { const a = document.getElementById('answer');"
        " return a.dataset.state === 'streaming' && Number(a.dataset.deltas) >= 1; }",
        timeout=10_000,
    )
    expect(answer).to_have_attribute("data-state", "done", timeout=10_000)
    expect(answer).to_have_text(text)
    assert int(answer.get_attribute("data-deltas")) == len(text.split())
    expect(page.locator("#answer-meta")).to_contain_text("STOP")
    expect(page.locator("#answer-error")).to_have_text("")
    # The key is in the page's memory only: not in the URL, storage or cookies.
    assert KEY not in page.url
    stored = page.evaluate("() => JSON.stringify([localStorage, sessionStorage, document.cookie])")
    assert KEY not in stored
    # The gateway recorded it as a gRPC-Web call.
    wait_for_requests_total("grpc_web", "StreamChat", "OK", before + 1)
    shot(page, "playground.png")


def test_a_wrong_key_shows_the_errors_reason(page: Page):
    before = requests_total("grpc_web", "StreamChat", "UNAUTHENTICATED")
    page.fill("#key", "not-a-valid-key")
    page.locator("#key").dispatch_event("change")
    error = page.locator("#answer-error")
    expect(error).to_have_attribute("data-reason", "UNAUTHENTICATED", timeout=10_000)
    expect(error).to_contain_text("UNAUTHENTICATED")
    # Sending with it fails the same way, with the reason decoded from ErrorInfo.
    page.evaluate("() => { const s = document.getElementById('model');"
                  " s.replaceChildren(new Option('echo', 'echo')); }")
    # Submitted without moving the focus: a click would blur the key field, whose native
    # `change` reloads the models and, failing again, empties the list before `send` reads it.
    page.locator("#playground").evaluate("form => form.requestSubmit()")
    expect(page.locator("#answer")).to_have_attribute("data-state", "failed", timeout=10_000)
    expect(error).to_have_attribute("data-reason", "UNAUTHENTICATED")
    expect(error).to_contain_text("UNAUTHENTICATED")
    wait_for_requests_total("grpc_web", "StreamChat", "UNAUTHENTICATED", before + 1)
