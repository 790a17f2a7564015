"""`bloxserver token ...`: print a dev JWT that the local stack (`make dev`) accepts."""

from __future__ import annotations

import argparse
import os
import sys

from devstack.issuer import DEFAULT_KEY_PATH, DEFAULT_PORT, TIERS, DevIssuer, issuer_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bloxserver", description="BloxServer local development tools")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print a dev JWT for the local stack")
    token.add_argument("--sub", required=True, help="the user's Clerk id, e.g. user_alice")
    token.add_argument("--email", required=True)
    token.add_argument("--name")
    token.add_argument("--tier", choices=TIERS, help="the `tier` claim (left out when not given)")
    token.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", DEFAULT_PORT)),
        help="port of the local stack; the token's issuer is http://127.0.0.1:PORT (default: $PORT or 3000)",
    )
    args = parser.parse_args(argv)
    issuer = DevIssuer(issuer_url(args.port), DEFAULT_KEY_PATH)
    print(issuer.token(sub=args.sub, email=args.email, name=args.name, tier=args.tier))
    return 0


if __name__ == "__main__":
    sys.exit(main())
