"""Test-wide setup: fake AWS credentials, moto with the template's resources, and handler invocation."""

from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, settings

from devstack.resources import environment
from devstack.template import functions

# The properties say what answers are, never how fast: on a loaded machine (CI, parallel workers) Hypothesis's
# timing checks would fail them for the machine's sake.
settings.register_profile("bloxserver", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("bloxserver")

# Every function's CodeUri directory shares sys.path, as in the local stack (function modules have unique names).
for _function in functions().values():
    if str(_function.code_dir) not in sys.path:
        sys.path.append(str(_function.code_dir))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "BloxServer",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "CLERK_WEBHOOK_SECRET": "whsec_dGVzdC1zZWNyZXQtZm9yLWNsZXJrLXdlYmhvb2tz",
        # The fast path is off unless a test turns it on (the `fast_path` fixture), so the queue path's tests keep
        # exercising the queue path with their quick flows; tests/integration/test_fast_path.py runs both.
        "FAST_PATH_BUDGET_MS": "0",
        **environment(),
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)

import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from devstack.embedded_aws import make_moto_dynamodb_faithful  # noqa: E402
from devstack.server import forget_cached_clients  # noqa: E402
from tests.support import ALICE, SHOUT_YAML, call  # noqa: E402

make_moto_dynamodb_faithful()


@pytest.fixture
def aws():
    """A fresh embedded AWS holding the resources template.yaml declares."""
    from devstack.resources import create_all

    with mock_aws():
        forget_cached_clients()
        create_all()
        yield
    forget_cached_clients()


@pytest.fixture
def flows(aws):
    """The flows function's handler, on the embedded AWS."""
    import flows_handler

    return flows_handler.handler


@pytest.fixture
def triggers(aws):
    """The triggers function's handler, on the embedded AWS."""
    import triggers_handler

    return triggers_handler.handler


@pytest.fixture
def flow_id(flows):
    """A stopped flow of Alice's (tests of triggers)."""
    reply = call(flows, "POST", "/api/v1/flows", body={"name": "Triggered", "organismYaml": SHOUT_YAML}, claims=ALICE)
    assert reply.status == 201
    return reply.json["id"]


@pytest.fixture
def users(aws):
    """The users function's handler, on the embedded AWS."""
    import users_handler

    return users_handler.handler


@pytest.fixture
def system(aws):
    """Every function of the execution path, wired to the embedded AWS (tests/executions_support.py)."""
    from tests.executions_support import system_of_handlers

    return system_of_handlers()


@pytest.fixture
def hook(system):
    """A running flow of ALICE's with a webhook trigger."""
    flow_id = system.running_flow()
    trigger = system.webhook(flow_id)
    return {"flowId": flow_id, "token": trigger["webhookToken"], "triggerId": trigger["id"]}


@pytest.fixture
def modules(aws):
    """The modules function's HTTP handler, on the embedded AWS."""
    import modules_handler

    return modules_handler.handler


@pytest.fixture
def module_uploads(aws):
    """The modules function's S3 notification handler, on the embedded AWS."""
    import uploads_handler

    return uploads_handler.handler


@pytest.fixture
def marketplace(aws):
    """The marketplace function's handler, on the embedded AWS."""
    import marketplace_handler

    return marketplace_handler.handler


@pytest.fixture
def loopback_allowed(monkeypatch):
    """The http handler may call 127.0.0.1 (the slow server), as BLOX_ALLOWED_PRIVATE_CIDRS allows in development."""
    from bloxserver.engine import get_engine_settings

    monkeypatch.setenv("BLOX_ALLOWED_PRIVATE_CIDRS", "127.0.0.1/32")
    get_engine_settings.cache_clear()
    yield
    get_engine_settings.cache_clear()


@pytest.fixture
def fast_path(monkeypatch):
    """Quick flows run at the door, with the deployed budget (template.yaml's FAST_PATH_BUDGET_MS)."""
    from bloxserver.settings import get_settings

    monkeypatch.setenv("FAST_PATH_BUDGET_MS", "50")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
