"""No route answers 500 to anything a client can send: every route of every API function, with each method, odd
bodies and odd query strings, with and without a token, answers below 500."""

from __future__ import annotations

import json
import random
import uuid

from bloxserver import jsonvalues
from tests.support import SHOUT_YAML, call, claims_for

PRO = claims_for("user_fuzz", tier="pro")

ODD_BODIES = [
    None, "", "null", "[]", "{}", "123", '"x"', "{bad", "\x00\xff",
    json.dumps({"name": None}),
    json.dumps({"name": ["a"]}),
    json.dumps({"name": "x" * 5000}),
    json.dumps({"name": "ok", "canvasState": {"nodes": "x"}}),
    json.dumps({"type": "webhook"}),
    json.dumps({"type": "bogus", "name": "m", "config": {}}),
    json.dumps({"type": "manual", "name": "m", "config": {"type": "webhook"}}),
    json.dumps({"type": "schedule", "name": "s", "config": {"type": "schedule"}}),
    json.dumps({"type": "schedule", "name": "s", "config": {"type": "schedule", "cron": "*/0 * * * *"}}),
    json.dumps({"type": "schedule", "name": "s", "config": {"type": "schedule", "cron": "0 0 1 * 1"}}),
    json.dumps({"organismYaml": "!!python/object/apply:os.system ['ls']"}),
    json.dumps({"organismYaml": "a: &a [*a]"}),
]
ODD_QUERIES = [
    None, {"page": "0"}, {"page": "-1"}, {"page_size": "abc"}, {"status": "nope"}, {"trigger_type": "x"},
    {"level": "loud"}, {"limit": "100000"}, {"execution_id": "not-uuid"}, {"period": "year"}, {"input_payload": "{bad"},
    {"cursor": "%%%"}, {"since": "later", "until": "sooner"}, {"flow_id": "x"},
]
METHODS = ("GET", "POST", "PATCH", "DELETE")


def test_no_route_answers_500_to_odd_requests(aws):
    import executions_handler
    import flows_handler
    import ingress_handler
    import triggers_handler
    import users_handler

    # Given a running flow with a webhook trigger
    flow = call(flows_handler.handler, "POST", "/api/v1/flows", body={"name": "f", "organismYaml": SHOUT_YAML}, claims=PRO)
    flow_id = flow.json["id"]
    call(flows_handler.handler, "POST", f"/api/v1/flows/{flow_id}/start", claims=PRO)
    trigger = call(
        triggers_handler.handler, "POST", f"/api/v1/flows/{flow_id}/triggers",
        body={"type": "webhook", "name": "w", "config": {"type": "webhook"}}, claims=PRO,
    ).json
    base = f"/api/v1/flows/{flow_id}"
    routes = {
        flows_handler.handler: [
            "/api/v1/flows", base, f"{base}/start", f"{base}/stop", f"{base}/validate",
            f"/api/v1/flows/{uuid.uuid4()}", "/api/v1/flows/x", f"{base}/versions", f"{base}/versions/1",
            f"{base}/versions/1/restore", f"{base}/versions/x", f"{base}/duplicate", f"{base}/export",
            "/api/v1/flows/import",
        ],
        triggers_handler.handler: [
            f"{base}/triggers", f"{base}/triggers/{trigger['id']}",
            f"{base}/triggers/{trigger['id']}/regenerate-token", f"{base}/triggers/x",
        ],
        executions_handler.handler: [
            f"{base}/executions", f"{base}/executions/run", f"{base}/executions/{uuid.uuid4()}",
            f"{base}/executions/x", f"{base}/stats", f"{base}/logs", "/api/v1/executions",
        ],
        ingress_handler.handler: [
            f"/webhooks/{trigger['webhookToken']}", f"/webhooks/{trigger['webhookToken']}/test",
            "/webhooks/x", "/webhooks/" + "a" * 500,
        ],
        users_handler.handler: ["/api/v1/me", "/api/v1/me/usage", "/webhooks/clerk"],
    }
    # When odd requests arrive (a fixed sample of query strings per request keeps the run short and repeatable)
    rng = random.Random(7)
    server_errors = []
    for handler, paths in routes.items():
        for path in paths:
            for method in METHODS:
                for body in ODD_BODIES:
                    for query in rng.sample(ODD_QUERIES, 3):
                        for claims in (PRO, None):
                            reply = call(
                                handler, method, path, body=body, claims=claims, query=query,
                                headers={"content-type": "application/json"},
                            )
                            if reply.status >= 500:
                                server_errors.append((method, path, body, query, reply.status, reply.body[:200]))
    # Then none is a server error
    assert not server_errors, server_errors[:10]


def test_a_trigger_config_error_names_the_field_as_the_client_wrote_it(flows):
    import triggers_handler

    # given a flow and a schedule config missing its cron, with a timezone of the wrong type
    flow_id = call(flows, "POST", "/api/v1/flows", body={"name": "f"}, claims=PRO).json["id"]
    body = {"type": "schedule", "name": "s", "config": {"type": "schedule", "timezone": 123}}
    # when it is created
    reply = call(triggers_handler.handler, "POST", f"/api/v1/flows/{flow_id}/triggers", body=body, claims=PRO)
    # then the details name body.config.<field>, without the union's variant tag pydantic puts in the location
    assert reply.status == 422
    assert set(reply.json["details"]) == {"body.config.cron", "body.config.timezone"}


def test_a_body_escaping_an_unpaired_surrogate_is_a_422_and_writes_nothing(flows):
    # JSON may escape "\ud800", and Python's parser accepts it, but such text can be neither stored nor answered
    import executions_handler

    flow = call(flows, "POST", "/api/v1/flows", body={"name": "f"}, claims=PRO).json
    bodies = {
        (flows, "POST", "/api/v1/flows"): '{"name": "\\ud800"}',
        (flows, "PATCH", f"/api/v1/flows/{flow['id']}"): '{"description": "x\\uDC00y"}',
        (executions_handler.handler, "POST", f"/api/v1/flows/{flow['id']}/executions/run"): '{"a": ["\\ud83d"]}',
    }
    for (handler, method, path), body in bodies.items():
        reply = call(handler, method, path, body=body, claims=PRO)
        assert (reply.status, reply.json["details"]) == (422, {"body": jsonvalues.UNPAIRED_SURROGATE}), path
    assert call(flows, "GET", "/api/v1/flows", claims=PRO).json["total"] == 1
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=PRO).json == flow
    # a well-formed pair (an emoji, as ensure_ascii encoders write it) is text like any other
    emoji = call(flows, "PATCH", f"/api/v1/flows/{flow['id']}", body='{"description": "\\ud83d\\ude00"}', claims=PRO)
    assert emoji.status == 200 and emoji.json["description"] == "\U0001f600"
