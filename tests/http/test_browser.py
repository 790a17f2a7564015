"""A real browser on another origin uses the local stack as a frontend would: headless Chromium (Debian's
`chromium` package) driven by Playwright for Python, which never downloads a browser of its own here.

The stack answers CORS from template.yaml's CorsConfiguration, with CorsAllowedOrigins set for the test to the
page's origin only (CORS_ALLOWED_ORIGINS, as `--parameter-overrides` sets a stage's): a page on that origin signs in
with a dev token, creates, lists, starts and triggers a flow and reads the execution's output and the logs cursor
(an exposed header), then uploads a WASM module through its presigned POST (the module bucket's CORS rules take the
same origins); a page on another origin is refused by the browser, which says so in its console.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devstack.resources import CORS_ORIGINS_VARIABLE
from devstack.server import start_local_stack
from tests.support import SHOUT_YAML
from tests.wasm_modules import ECHO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = Path(__file__).parent / "browser"
# As root and on a machine without internet: no sandbox, no GPU, nothing fetched in the background.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="SKIPPED: no Chromium on this machine (Debian: `apt-get install chromium`; .ci/run does)"
)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def page_servers():
    """Two origins serving the test frontend: http://127.0.0.1:<a> and http://127.0.0.1:<b>."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(PAGES))) for _ in "ab"]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{server.server_address[1]}" for server in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def test_a_page_on_an_allowed_origin_runs_a_flow_and_one_on_another_origin_is_refused(
    page_servers, browser, monkeypatch
):
    allowed, other = page_servers
    monkeypatch.setenv(CORS_ORIGINS_VARIABLE, allowed)
    with start_local_stack(port=0) as stack:
        token = stack.token(sub="user_browser", email="browser@example.com", tier="pro")
        page = browser.new_page()
        page.goto(f"{allowed}/frontend.html")

        result = page.evaluate(
            "([base, token, yaml]) => runScenario(base, token, yaml)", [stack.url, token, SHOUT_YAML]
        )

        assert result["steps"] == {"create": 201, "list": 200, "start": 200, "trigger": 201, "webhook": 202}
        assert result["status"] == "success" and json.loads(result["output"]) == {"shout": "GRACE"}
        assert json.loads(page.inner_text("#output")) == {"shout": "GRACE"}
        assert "Shout from the browser" in page.inner_text("#flows")
        assert result["logsCursor"], "X-Next-Cursor is not readable: the API does not expose it"

        upload = page.evaluate(
            "([base, token, bytes]) => uploadModule(base, token, bytes)", [stack.url, token, list(ECHO)]
        )

        assert (upload["create"], upload["upload"], upload["complete"]) == (201, 204, 200), upload
        assert upload["module"]["status"] == "ready" and upload["module"]["sizeBytes"] == len(ECHO)

        foreign = browser.new_page()
        console: list[str] = []
        foreign.on("console", lambda message: console.append(message.text))
        foreign.goto(f"{other}/frontend.html")

        refused = foreign.evaluate("([base, token]) => tryList(base, token)", [stack.url, token])

    assert refused == {"error": "TypeError: Failed to fetch"}
    assert any("blocked by CORS policy" in line and other in line for line in console), console
