"""`make dev`: the whole API at http://127.0.0.1:3000 (PORT overrides) until Ctrl-C, keeping its data in
.devdata/ (DEV_DATA_DIR overrides) across restarts; `make dev-reset` (`--reset`) starts it empty."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from devstack.issuer import DEFAULT_PORT, TOKEN_LIFETIME_SECONDS
from devstack.persistence import LocalData
from devstack.server import start_local_stack
from devstack.template import ROOT

DEFAULT_DATA_FOLDER = ROOT / ".devdata"

# Pro: the docs' examples each make a flow, and a free user may keep one (mint a --tier free token to try limits).
DEMO_USER = {"sub": "user_demo", "email": "demo@example.com", "name": "Demo User", "tier": "pro"}


STOP_REQUESTED = threading.Event()


def _request_stop(*_: object) -> None:
    """Ctrl-C (SIGINT) and `kill` (SIGTERM) only ask the main loop to stop: an exception raised inside a
    blocking wait can leave that wait's lock broken."""
    STOP_REQUESTED.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="BloxServer's local stack (make dev)")
    parser.add_argument("--reset", action="store_true", help="forget the kept data and start empty (make dev-reset)")
    args = parser.parse_args(argv)
    port = int(os.environ.get("PORT", DEFAULT_PORT))
    data_folder = Path(os.environ.get("DEV_DATA_DIR") or DEFAULT_DATA_FOLDER).resolve()
    if args.reset:
        LocalData(data_folder).reset()
    try:
        stack = start_local_stack(port=port, data_folder=data_folder)
    except OSError as exc:
        raise SystemExit(f"Cannot serve on 127.0.0.1:{port} ({exc.strerror}); choose another port with PORT=...") from None
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        token = stack.token(**DEMO_USER)
        print(
            f"""
BloxServer local stack: {stack.url}
  API docs:             {stack.url}/docs (Swagger UI; the document: {stack.url}/openapi.json)
  JWKS:                 {stack.url}/.well-known/jwks.json (issuer {stack.url}, audience bloxserver-dev)
  embedded AWS (moto):  {stack.aws.endpoint_url}
  data:                 {data_folder} (kept across restarts: {stack.replayed} recorded changes replayed; make dev-reset starts empty)
  signing key:          {stack.issuer.key_path} (kept, so tokens survive restarts)
  Clerk webhook secret: {stack.webhook_secret}

Dev token for {DEMO_USER['sub']} ({DEMO_USER['email']}, tier {DEMO_USER['tier']}), valid {TOKEN_LIFETIME_SECONDS // 3600} h:
  TOKEN={token}
  curl -H "Authorization: Bearer $TOKEN" {stack.url}/api/v1/flows

Tokens for other users: .venv/bin/bloxserver token --sub ID --email ADDRESS [--name NAME] [--tier TIER] --port {stack.port}
Ctrl-C stops.
""",
            flush=True,
        )
        while not STOP_REQUESTED.wait(0.5):
            pass
    finally:
        stack.stop()
        print("Stopped.")


if __name__ == "__main__":
    main()
