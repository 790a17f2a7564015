"""`bloxserver token ...`: print a dev JWT that the local stack (`make dev`) accepts.
`bloxserver invoke <LogicalId> -e EVENT`: run one function on an event against `make dev`, as `sam local invoke`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

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
    invoke = commands.add_parser(
        "invoke", help="run a function of template.yaml on an event against `make dev` (sam local invoke, no Docker)"
    )
    invoke.add_argument("function", metavar="LogicalId", help="the function's logical id, e.g. FlowsFunction")
    invoke.add_argument(
        "-e", "--event", required=True, type=Path, help="the event file, e.g. events/flows/list-flows.json"
    )
    invoke.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", DEFAULT_PORT)),
        help="port of the running local stack (default: $PORT or 3000)",
    )
    args = parser.parse_args(argv)
    if args.command == "invoke":
        return _invoke(args)
    issuer = DevIssuer(issuer_url(args.port), DEFAULT_KEY_PATH)
    print(issuer.token(sub=args.sub, email=args.email, name=args.name, tier=args.tier))
    return 0


def _invoke(args: argparse.Namespace) -> int:
    from devstack.invoke import StackNotRunning, invoke

    try:
        result = invoke(args.function, args.event, args.port)
    except (StackNotRunning, KeyError, FileNotFoundError) as exc:
        print(f"Error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
