"""The AWS clients of the data-access modules: one configuration, one client per service and process."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Short timeouts and standard retries: a Lambda should fail fast rather than hang on a stuck connection.
# No client-side parameter validation: every request is built by this package's code (never from caller input
# passed through), tests exercise each one against the emulator, and the service validates again; skipping it
# saves about a tenth of a call's CPU.
# A fixed User-Agent: botocore otherwise rebuilds its descriptive one (SDK, OS, language, feature ids) twice per
# call, about a sixth of a small call's CPU.
CLIENT_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 3},
    parameter_validation=False,
    user_agent="bloxserver",
)


@cache
def client(service: str) -> Any:
    """Created on first use, not at import, so tests and the local stack can point it at moto first."""
    return boto3.client(service, config=CLIENT_CONFIG)
