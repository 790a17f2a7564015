"""The whole system in one process: embedded AWS, the template's resources and functions behind a local
API Gateway with its JWT authorizer, a dev token issuer, and room for background workers.

    stack = start_local_stack(port=0)      # port 0: a free one
    stack.url, stack.token(sub="user_1", email="u1@example.com", tier="pro")
    stack.add_worker(poll_queue)           # poll_queue(stop: threading.Event) runs in a daemon thread
    stack.stop()

One stack per process at a time: moto's state and the functions' cached clients are per process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack import (
    bucket_events,
    embedded_aws,
    issuer,
    persistence,
    queue_worker,
    resources,
    scheduler,
    stream_events,
    template,
)
from devstack.authorizer import JwtAuthorizer
from devstack.gateway import Cors, Gateway, GatewayServer, LocalFunction
from devstack.routing import RouteTable
from devstack.template import resources_of_type

# A fixed dev signing secret for the Clerk webhook (svix format), so local webhook senders can be configured once.
DEV_CLERK_WEBHOOK_SECRET = "whsec_YmxveHNlcnZlciBsb2NhbCBkZXYgd2ViaG9vayBrZXkh"
WORKER_STOP_TIMEOUT_SECONDS = 5.0
# The settings of our own code (bloxserver.settings, the engine): a developer may set them for `make dev`.
DEVELOPER_SETTINGS_PREFIX = "BLOX_"


class LocalStack:
    def __init__(
        self,
        port: int = 0,
        key_path: Path = issuer.DEFAULT_KEY_PATH,
        data: persistence.LocalData | None = None,
        background_workers: bool = True,
    ) -> None:
        self._stop_event = threading.Event()
        self._workers: list[threading.Thread] = []
        self._saved_environment: dict[str, str | None] = {}
        self.data = data  # None: in memory, gone at stop
        self.replayed = 0  # requests replayed from `data` at start
        self.aws = embedded_aws.EmbeddedAws()
        if data is not None:
            data.seed(self.aws.endpoint_url)  # before the template's resources are made: same KMS key ids
        try:
            self._http = GatewayServer(port)  # bound first: the port is part of the issuer URL
        except BaseException:
            self.aws.stop()
            raise
        self.port = self._http.server_address[1]
        self.url = issuer.issuer_url(self.port)
        self.webhook_secret = os.environ.get("CLERK_WEBHOOK_SECRET") or DEV_CLERK_WEBHOOK_SECRET
        try:
            self.issuer = issuer.DevIssuer(self.url, key_path)
            self._wire()
        except BaseException:
            self._shut_down()
            raise
        self._http_thread = threading.Thread(target=self._http.serve_forever, name="devstack-gateway", daemon=True)
        self._http_thread.start()
        if background_workers:  # off: only requests change anything (devstack.fuzz)
            queue_worker.start_workers(self, self.resource_refs)  # the SQS event sources and ScheduleV2 rates
            scheduler.start_worker(self, self.resource_refs["ScheduleGroup"])  # the schedules triggers create
            bucket_events.start_workers(self, self.resource_refs)  # the S3 object-created notifications
            stream_events.start_workers(self)  # the DynamoDB stream event sources (failure alerts)

    def _wire(self) -> None:
        # The functions' boto3 clients are created after this point, so they all talk to the embedded moto.
        self.resource_refs = refs = configure_functions(
            self.aws.endpoint_url, local_template_refs(self.url, self.webhook_secret), self._set_environment
        )
        if self.data is not None:
            self.data.keep_key_material({logical_id: refs[logical_id] for logical_id in resources_of_type("AWS::KMS::Key")})
            self.replayed = self.data.replay_and_record(self.aws.endpoint_url)
        api = template.resolve(template.http_api(), refs)
        authorizers = {
            name: JwtAuthorizer(
                identity_source=authorizer["IdentitySource"],
                issuer=authorizer["JwtConfiguration"]["issuer"],
                audience=authorizer["JwtConfiguration"]["audience"],
                jwks=self.issuer.jwks(),
            )
            for name, authorizer in api.get("Auth", {}).get("Authorizers", {}).items()
        }
        self._http.gateway = Gateway(
            routes=RouteTable(template.http_routes()),
            functions={name: LocalFunction(spec) for name, spec in template.functions().items()},
            authorizers=authorizers,
            cors=Cors(api.get("CorsConfiguration", {})),
            jwks=self.issuer.jwks(),
            function_environment=self.function_environment,
        )

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The environment `logical_id` has in AWS (template.yaml's, resolved), pointed at this stack's AWS."""
        return {
            **embedded_aws.FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.aws.endpoint_url,
            **template.function_environments(self.resource_refs)[logical_id],
        }

    def _set_environment(self, variables: dict[str, str]) -> None:
        for name, value in variables.items():
            if name.startswith(DEVELOPER_SETTINGS_PREFIX) and name in os.environ and name not in self._saved_environment:
                continue  # the developer's own setting (e.g. an LLM endpoint) wins over the template's default
            self._saved_environment.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def token(self, sub: str = "user_demo", email: str = "demo@example.com", name: str | None = None,
              tier: str | None = None) -> str:
        """A token this stack's authorizer accepts (the same one `bloxserver token` prints)."""
        return self.issuer.token(sub=sub, email=email, name=name, tier=tier)

    def add_worker(self, target: Callable[[threading.Event], None], name: str) -> None:
        """Run `target(stop)` in a daemon thread; it should return soon after `stop` is set."""
        worker = threading.Thread(target=target, args=(self._stop_event,), name=name, daemon=True)
        self._workers.append(worker)
        worker.start()

    def stop(self) -> None:
        self._stop_event.set()
        for worker in self._workers:
            worker.join(WORKER_STOP_TIMEOUT_SECONDS)
        self._http.shutdown()
        self._http_thread.join()
        try:
            if self.data is not None:  # nothing writes any more
                tables = [self.resource_refs[logical_id] for logical_id in resources_of_type("AWS::DynamoDB::Table")]
                self.data.compact(self.aws.endpoint_url, tables)
        finally:
            self._shut_down()

    def _shut_down(self) -> None:
        if self.data is not None:
            self.data.stop_recording()
        self._http.server_close()
        self.aws.stop()
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        forget_cached_clients()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_local_stack(
    port: int = 0,
    key_path: Path = issuer.DEFAULT_KEY_PATH,
    data_folder: Path | None = None,
    background_workers: bool = True,
) -> LocalStack:
    """Start the stack on 127.0.0.1:`port` (0: a free port) and return once it accepts requests. With a
    `data_folder`, what it held when it last stopped there is back, and what it does now is kept there
    (devstack/persistence.py); without one, it starts empty and keeps nothing. Without `background_workers`, no
    queue, schedule, bucket or stream event runs a function: only requests change anything (devstack.fuzz)."""
    return LocalStack(
        port=port,
        key_path=key_path,
        data=persistence.LocalData(data_folder) if data_folder else None,
        background_workers=background_workers,
    )


def local_template_refs(url: str, webhook_secret: str) -> dict[str, Any]:
    """Local values for the template's parameters, pseudo parameters and the HttpApi."""
    return {
        **template.parameter_defaults(),
        "Environment": "dev",
        "CorsAllowedOrigins": resources.local_cors_origins(),
        "ClerkIssuer": url,
        "ClerkAudience": issuer.AUDIENCE,
        "PublicBaseUrl": url,
        "ClerkWebhookSecret": webhook_secret,
        "AWS::Region": embedded_aws.FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
        "AWS::AccountId": "123456789012",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "bloxserver-local",
        "HttpApi": "local",
    }


def configure_functions(
    endpoint_url: str, template_refs: dict[str, Any], set_environment: Callable[[dict[str, str]], None]
) -> dict[str, Any]:
    """Create the template's resources at `endpoint_url` and give this process the environment its functions
    get in AWS, pointed there; returns the resolved references (logical id → name, URL or ARN)."""
    # The functions' boto3 clients are created after this point, so they all talk to the embedded AWS.
    set_environment({**embedded_aws.FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint_url})
    refs = {**template_refs, **resources.create_all(endpoint_url)}
    set_environment(_process_environment(template.function_environments(refs)))
    forget_cached_clients()
    return refs


def _process_environment(environments: dict[str, dict[str, str]]) -> dict[str, str]:
    """All functions share this process, so they share one environment: every variable of every function,
    except one that functions set to different values (POWERTOOLS_SERVICE_NAME), which no value would fit."""
    merged: dict[str, str] = {}
    conflicting: set[str] = set()
    for variables in environments.values():
        for name, value in variables.items():
            if merged.setdefault(name, value) != value:
                conflicting.add(name)
    return {name: value for name, value in merged.items() if name not in conflicting}


def forget_cached_clients() -> None:
    """The shared layer caches its settings and AWS clients per process, like a warm Lambda; a stack that
    starts (or stops) in a process that already used them must make them re-read the environment."""
    from bloxserver.dal import aws, idempotency
    from bloxserver.settings import get_settings

    get_settings.cache_clear()
    aws.client.cache_clear()
    idempotency.persistence_store.cache_clear()
