"""`make dev`: the whole API at http://127.0.0.1:3000 (PORT overrides) until Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading

from devstack.issuer import DEFAULT_PORT, TOKEN_LIFETIME_SECONDS
from devstack.server import start_local_stack

# Pro: the docs' examples each make a flow, and a free user may keep one (mint a --tier free token to try limits).
DEMO_USER = {"sub": "user_demo", "email": "demo@example.com", "name": "Demo User", "tier": "pro"}


STOP_REQUESTED = threading.Event()


def _request_stop(*_: object) -> None:
    """Ctrl-C (SIGINT) and `kill` (SIGTERM) only ask the main loop to stop: an exception raised inside a
    blocking wait can leave that wait's lock broken."""
    STOP_REQUESTED.set()


def main() -> None:
    port = int(os.environ.get("PORT", DEFAULT_PORT))
    try:
        stack = start_local_stack(port=port)
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
  embedded AWS (moto):  {stack.aws.endpoint_url} (in memory: data is gone after a restart)
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
