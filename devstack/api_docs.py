"""The local stack's API documentation: `/openapi.json` (devstack.openapi's document, built from the code) and
`/docs`, Swagger UI from the swagger-ui-py package's files (the machine may have no internet, so no CDN).

Only the local stack serves these: the deployed HTTP API has exactly the template's routes.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

DOCUMENT_PATH = "/openapi.json"
DOCS_PATH = "/docs"
_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>BloxServer API (local)</title>
  <link rel="icon" href="/docs/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    // "Authorize" takes the token `make dev` prints (or `bloxserver token`); requests go to this local stack.
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", persistAuthorization: true});
  </script>
</body>
</html>
"""


@dataclass(frozen=True)
class Page:
    content_type: str
    body: bytes


class ApiDocs:
    def __init__(self) -> None:
        self._lock = threading.Lock()

    @cached_property
    def _document(self) -> bytes:
        from devstack.openapi import build_document

        return json.dumps(build_document()).encode()

    def page(self, path: str) -> Page | None:
        """The page at `path`, or None when `path` is not one of the docs' (the gateway routes it)."""
        if path == DOCUMENT_PATH:
            with self._lock:  # built once, on the first request: it imports every function
                return Page("application/json", self._document)
        if path in (DOCS_PATH, DOCS_PATH + "/"):
            return Page("text/html; charset=utf-8", _PAGE.encode())
        name = path.removeprefix(DOCS_PATH + "/")
        if name in _ASSETS:
            asset = resources.files("swagger_ui") / "static" / name
            return Page(mimetypes.guess_type(name)[0] or "application/octet-stream", asset.read_bytes())
        return None
