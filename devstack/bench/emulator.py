"""The benchmark's AWS emulator: moto's server application, as faithful to DynamoDB as the local stack's, served
with HTTP/1.1 keep-alive. botocore keeps its connections to AWS open; moto's own server (Werkzeug) closes every
one, which would charge each call a TCP connect that our code never pays in AWS.

    python -m devstack.bench.emulator PORT
"""

from __future__ import annotations

import sys

import waitress
from moto.server import DomainDispatcherApplication, create_backend_app

from devstack.embedded_aws import make_moto_dynamodb_faithful


def main(port: int) -> None:
    make_moto_dynamodb_faithful()
    waitress.serve(DomainDispatcherApplication(create_backend_app), host="127.0.0.1", port=port, threads=4, _quiet=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
