"""AWS round trips per request of the foundation routes (a cost budget, counted, never timed)."""

from __future__ import annotations

from devstack.aws_calls import count_aws_calls
from tests.support import call, claims_for

PRO = claims_for("user_rita", tier="pro")


def dynamodb_calls(counter) -> dict[str, int]:
    return {name: n for name, n in counter.items() if name.startswith("dynamodb.")}


def test_reading_one_flow_costs_one_get_item(flows):
    flow_id = call(flows, "POST", "/api/v1/flows", body={"name": "a"}, claims=PRO).json["id"]
    with count_aws_calls() as calls:
        assert call(flows, "GET", f"/api/v1/flows/{flow_id}", claims=PRO).status == 200
    assert dynamodb_calls(calls) == {"dynamodb.GetItem": 1}


def test_a_list_page_costs_at_most_two_calls(flows):
    for index in range(3):
        call(flows, "POST", "/api/v1/flows", body={"name": f"f{index}"}, claims=PRO)
    with count_aws_calls() as calls:
        assert call(flows, "GET", "/api/v1/flows", claims=PRO, query={"page_size": "2"}).json["total"] == 3
    assert sum(dynamodb_calls(calls).values()) <= 2


def test_a_create_costs_one_transaction_provisioning_included(flows):
    with count_aws_calls() as first:
        assert call(flows, "POST", "/api/v1/flows", body={"name": "first"}, claims=PRO).status == 201
    with count_aws_calls() as second:
        assert call(flows, "POST", "/api/v1/flows", body={"name": "second"}, claims=PRO).status == 201
    assert dynamodb_calls(first) == {"dynamodb.TransactWriteItems": 1}
    assert dynamodb_calls(second) == {"dynamodb.TransactWriteItems": 1}


def test_an_update_costs_one_conditional_write(flows):
    flow_id = call(flows, "POST", "/api/v1/flows", body={"name": "a"}, claims=PRO).json["id"]
    with count_aws_calls() as calls:
        assert call(flows, "PATCH", f"/api/v1/flows/{flow_id}", body={"name": "b"}, claims=PRO).status == 200
    assert dynamodb_calls(calls) == {"dynamodb.UpdateItem": 1}


def test_me_costs_one_read_once_provisioned(users):
    call(users, "GET", "/api/v1/me", claims=PRO)
    with count_aws_calls() as calls:
        assert call(users, "GET", "/api/v1/me", claims=PRO).status == 200
    assert dynamodb_calls(calls) == {"dynamodb.GetItem": 1}
