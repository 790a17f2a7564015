"""`make fuzz`: schemathesis generates requests for every operation of openapi.json, valid ones and invalid ones,
and sends them to a local stack with the tokens of two users (a pro and a free one).

Every answer must: not be a 5xx; be an ApiError when it is a 4xx; have a status, content type and body that the
document declares for the operation. A refused request (4xx) must write nothing: the template's tables are read
before and after it. The stack runs without its background workers (queue, schedules, bucket notifications), so
only the request under test can write.

    python -m devstack.fuzz [--max-examples N] [--seed N]    # `make test` runs a bounded budget (tests/api)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
from hypothesis import strategies as st

from devstack.openapi import DOCUMENT_PATH
from devstack.resources import LOCAL_ACCOUNT_ID, LOCAL_REGION, PHYSICAL_NAMES
from devstack.server import LocalStack, start_local_stack

USERS = {
    "pro": {"sub": "user_fuzz_pro", "email": "fuzz-pro@example.com", "tier": "pro"},
    "free": {"sub": "user_fuzz_free", "email": "fuzz-free@example.com", "tier": "free"},
}
OWNER = "pro"  # whose real resources the third pass uses
TABLES = ("AppTable", "IdempotencyTable")
REQUEST_TIMEOUT_SECONDS = 30
# Long polls hold a request up to their limit (GET .../logs?wait=20, a start with Prefer: wait=25): requests are sent
# without them, or the budget would be spent waiting.
LONG_POLL_QUERY = "wait"
LONG_POLL_HEADER = "prefer"


@dataclass
class Finding:
    operation: str
    problem: str
    request: str
    status: int
    body: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.problem}\n  {self.request} -> {self.status} {self.body[:300]}"


@dataclass
class FuzzReport:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        return (f"{self.requests} requests in {self.seconds:.0f} s, {len(self.findings)} failures "
                f"(statuses {statuses})")


class _TableReader:
    """The template's tables as the stack's moto holds them: the stack runs in this process, and reading its
    backend directly costs microseconds where a Scan through the API costs a hundred milliseconds."""

    def snapshot(self) -> dict[str, list[str]]:
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[LOCAL_ACCOUNT_ID][LOCAL_REGION]
        return {
            logical_id: sorted(
                json.dumps(item.to_json(), sort_keys=True, default=repr)
                for item in backend.get_table(PHYSICAL_NAMES[logical_id]).all_items()
            )
            for logical_id in TABLES
        }


def _api_error_problem(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return "a 4xx whose body is not JSON"
    if not (isinstance(body, dict) and isinstance(body.get("code"), str) and isinstance(body.get("message"), str)):
        return "a 4xx that is not an ApiError {code, message, details?}"
    if not (body.get("details") is None or isinstance(body["details"], dict)):
        return "an ApiError whose details is not an object"
    return None


def _written(before: dict[str, list[str]], after: dict[str, list[str]]) -> str | None:
    for table in TABLES:
        if before[table] != after[table]:
            added = set(after[table]) - set(before[table])
            removed = set(before[table]) - set(after[table])
            return f"a refused request changed {table}: +{list(added)[:2]} -{list(removed)[:2]}"
    return None


class _Owner:
    """Real resources of the pro user, made fresh for each operation, so that requests reach past the 404 of an
    unknown id: a flow (started, with a run), its webhook trigger, a memory entry, a module and a secret."""

    ID_NAMES = ("flowId", "triggerId", "token", "executionId", "key", "name", "moduleId", "version")

    def __init__(self, stack: LocalStack, session: requests.Session, token: str) -> None:
        self._url, self._session = stack.url, session
        self._headers = {"Authorization": f"Bearer {token}"}
        self._module_id: str | None = None

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        response = self._session.request(
            method, self._url + path, json=body, headers=self._headers, timeout=REQUEST_TIMEOUT_SECONDS
        )
        if response.status_code >= 300:
            raise RuntimeError(f"seeding: {method} {path} answered {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def path_parameters(self) -> dict[str, str]:
        flow_id = self._send("POST", "/api/v1/flows", {"name": "Fuzzed"})["id"]
        flow = f"/api/v1/flows/{flow_id}"
        trigger = self._send("POST", f"{flow}/triggers", {"type": "webhook", "name": "in", "config": {}})
        self._send("PATCH", f"{flow}/memory", {"enabled": True})
        self._send("PUT", f"{flow}/memory/entries/fuzzed", {"value": 1})
        self._send("PUT", "/api/v1/secrets/FUZZED", {"value": "a secret"})
        self._send("POST", f"{flow}/start")
        execution_id = self._send("POST", f"{flow}/executions/run", {"name": "fuzz"})["id"]
        if self._module_id is None:  # a tier counts modules: one serves every operation until one deletes it
            self._module_id = self._send("POST", "/api/v1/modules", {"name": "Fuzzed"})["id"]
        return {
            "flowId": flow_id, "triggerId": trigger["id"], "token": trigger["webhookToken"],
            "executionId": execution_id, "key": "fuzzed", "name": "FUZZED", "moduleId": self._module_id,
            "version": "1",
        }


def fuzz(stack: LocalStack, max_examples: int, seed: int | None = None) -> FuzzReport:
    """Per operation: valid requests with random ids, invalid ones, and valid ones with the ids of real
    resources of the pro user (the free user's requests to those must be 404s)."""
    import schemathesis
    from schemathesis.core.failures import FailureGroup
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_path(str(DOCUMENT_PATH))
    tokens = {name: stack.token(**user) for name, user in USERS.items()}
    tables = _TableReader()
    session = requests.Session()
    owner = _Owner(stack, session, tokens[OWNER])
    report = FuzzReport()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        path_names = {parameter.name for parameter in operation.path_parameters}
        # A secret's name is the caller's own namespace; a flow or module id names the owner's resource.
        owned = bool(operation.definition.raw.get("security")) and bool(path_names & {"flowId", "moduleId"})
        passes = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        if path_names & set(_Owner.ID_NAMES):  # an id _Owner does not make (yet) stays generated
            real = owner.path_parameters()
            passes.append((GenerationMode.POSITIVE, {name: real[name] for name in path_names if name in real}))
        for mode, path_parameters in passes:
            owned_ids = path_parameters is not None and owned

            @hypothesis.settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                derandomize=seed is None,  # the same requests on every run: `make test` cannot flake
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            @hypothesis.seed(seed)
            @hypothesis.given(
                case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters),
                user=st.sampled_from(sorted(USERS)),
            )
            def run_one(case: Any, user: str) -> None:
                (case.query or {}).pop(LONG_POLL_QUERY, None)
                case.headers = {name: value for name, value in (case.headers or {}).items()
                                if name.lower() != LONG_POLL_HEADER}
                before = tables.snapshot()
                response = case.call(
                    base_url=stack.url,
                    session=session,
                    headers={"Authorization": f"Bearer {tokens[user]}"},
                    timeout=REQUEST_TIMEOUT_SECONDS,
                )
                report.requests += 1
                report.statuses[response.status_code] += 1
                problems = []
                if owned_ids and user != OWNER and response.status_code < 300:
                    problems.append("another user reached the owner's resource (must be 404)")
                if response.status_code >= 500:
                    problems.append("a server error")
                elif response.status_code >= 400:
                    problems.append(_api_error_problem(response))
                    problems.append(_written(before, tables.snapshot()))
                try:
                    case.validate_response(
                        response,
                        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
                    )
                except (AssertionError, FailureGroup) as failure:  # a schemathesis Failure is an AssertionError
                    problems.append(" ".join(str(failure).split())[:300] or repr(failure))
                for problem in filter(None, problems):
                    request = response.request
                    body = request.body.decode(errors="replace") if isinstance(request.body, bytes) else request.body
                    report.findings.append(
                        Finding(label, problem, f"{request.method} {request.url} {(body or '')[:200]}",
                                response.status_code, response.text)
                    )

            try:
                run_one()
            except hypothesis.errors.Unsatisfiable:
                continue  # an operation without parameters or body has no invalid request to make
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=50, help="per operation and mode (default 50)")
    parser.add_argument("--seed", type=int, help="explore other requests (default: the same ones on every run)")
    args = parser.parse_args(argv)
    with start_local_stack(port=0, background_workers=False) as stack:
        report = fuzz(stack, args.max_examples, args.seed)
    for finding in report.findings:
        print(finding)
    print(report.summary())
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
