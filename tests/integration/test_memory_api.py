"""Project memory over the API (docs/memory.md): a flow's state, its entries, their preconditions, exact size
accounting under concurrency, expiry, and the memory's life with its flow."""

from __future__ import annotations

import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from tests.support import SHOUT_YAML, call, claims_for

PRO = claims_for("user_alice", tier="pro")
PAID = claims_for("user_alice", tier="paid")
FREE = claims_for("user_alice", tier="free")
MB = 1024 * 1024


@pytest.fixture
def memory(aws):
    import memory_handler

    return memory_handler.handler


@pytest.fixture
def flow(flows):
    reply = call(flows, "POST", "/api/v1/flows", body={"name": "Remembers", "organismYaml": SHOUT_YAML}, claims=PRO)
    assert reply.status == 201, reply.body
    return reply.json["id"]


def memory_path(flow_id: str) -> str:
    return f"/api/v1/flows/{flow_id}/memory"


def entry_path(flow_id: str, key: str) -> str:
    return f"{memory_path(flow_id)}/entries/{quote(key, safe='')}"


def enable(memory, flow_id: str, claims=PRO) -> dict:
    reply = call(memory, "PATCH", memory_path(flow_id), body={"enabled": True}, claims=claims)
    assert reply.status == 200, reply.body
    return reply.json


def put(memory, flow_id: str, key: str, value, claims=PRO, headers=None, ttl=None):
    body = {"value": value} if ttl is None else {"value": value, "ttlSeconds": ttl}
    return call(memory, "PUT", entry_path(flow_id, key), body=body, claims=claims, headers=headers)


def state(memory, flow_id: str, claims=PRO) -> dict:
    reply = call(memory, "GET", memory_path(flow_id), claims=claims)
    assert reply.status == 200, reply.body
    return reply.json


def test_given_a_new_flow_then_its_memory_is_disabled_and_empty_with_the_tiers_size(memory, flow):
    assert state(memory, flow) == {
        "flowId": flow,
        "enabled": False,
        "usedBytes": 0,
        "maxBytes": 100 * MB,
        "keys": [],
        "hasMoreKeys": False,
    }
    assert state(memory, flow, claims=PAID)["maxBytes"] == 10 * MB


def test_given_enabled_memory_when_an_entry_is_put_then_it_reads_back_and_counts_its_bytes(memory, flow):
    assert enable(memory, flow)["enabled"] is True
    reply = put(memory, flow, "greeting", {"text": "héllo", "n": [1, 2]})
    assert reply.status == 200, reply.body
    entry = reply.json
    text = '{"text":"héllo","n":[1,2]}'
    assert entry["key"] == "greeting" and entry["value"] == text
    assert entry["sizeBytes"] == len("greeting") + len(text.encode())
    assert isinstance(entry["version"], int) and entry["expiresAt"] is None
    read = call(memory, "GET", entry_path(flow, "greeting"), claims=PRO)
    assert read.status == 200 and read.json == entry
    described = state(memory, flow)
    assert described["usedBytes"] == entry["sizeBytes"] and described["keys"] == ["greeting"]


def test_given_an_entry_when_it_is_overwritten_and_deleted_then_used_bytes_follow_exactly(memory, flow):
    enable(memory, flow)
    first = put(memory, flow, "k", "a" * 100).json
    second = put(memory, flow, "k", "b").json
    assert second["version"] > first["version"]
    assert state(memory, flow)["usedBytes"] == second["sizeBytes"] == 1 + 3
    put(memory, flow, "other", None)
    assert state(memory, flow)["usedBytes"] == 4 + len("other") + 4
    assert call(memory, "DELETE", entry_path(flow, "k"), claims=PRO).status == 204
    assert call(memory, "GET", entry_path(flow, "k"), claims=PRO).status == 404
    assert state(memory, flow)["usedBytes"] == len("other") + 4
    assert call(memory, "DELETE", entry_path(flow, "k"), claims=PRO).status == 404


def test_given_if_match_then_a_stale_version_is_412_and_writes_nothing(memory, flow):
    enable(memory, flow)
    version = put(memory, flow, "k", 1).json["version"]
    stale = put(memory, flow, "k", 2, headers={"If-Match": str(version - 1)})
    assert stale.status == 412 and stale.json["code"] == "version_mismatch"
    assert json.loads(call(memory, "GET", entry_path(flow, "k"), claims=PRO).json["value"]) == 1
    fresh = put(memory, flow, "k", 3, headers={"If-Match": str(version)})
    assert fresh.status == 200 and fresh.json["value"] == "3"
    absent = put(memory, flow, "missing", 1, headers={"If-Match": "1"})
    assert absent.status == 412 and absent.json["code"] == "version_mismatch"
    assert call(memory, "GET", entry_path(flow, "missing"), claims=PRO).status == 404
    refused_delete = call(memory, "DELETE", entry_path(flow, "k"), claims=PRO, headers={"If-Match": str(version)})
    assert refused_delete.status == 412
    current = {"If-Match": str(fresh.json["version"])}
    deleted = call(memory, "DELETE", entry_path(flow, "k"), claims=PRO, headers=current)
    assert deleted.status == 204


def test_given_if_none_match_star_then_only_a_new_key_is_created(memory, flow):
    enable(memory, flow)
    assert put(memory, flow, "once", 1, headers={"If-None-Match": "*"}).status == 200
    again = put(memory, flow, "once", 2, headers={"If-None-Match": "*"})
    assert again.status == 412 and again.json["code"] == "version_mismatch"
    bad = put(memory, flow, "once", 2, headers={"If-None-Match": "abc"})
    assert bad.status == 422 and "header.if-none-match" in bad.json["details"]


def test_given_a_recreated_entry_then_the_old_version_no_longer_matches(memory, flow):
    enable(memory, flow)
    version = put(memory, flow, "k", 1).json["version"]
    call(memory, "DELETE", entry_path(flow, "k"), claims=PRO)
    recreated = put(memory, flow, "k", 1).json["version"]
    assert recreated != version
    assert put(memory, flow, "k", 2, headers={"If-Match": str(version)}).status == 412


@pytest.mark.parametrize(
    "key",
    ["x" * 513, "é" * 257, "line\nbreak", "tab\there", "del\x7f", "\u0085"],
)
def test_given_an_invalid_key_then_it_is_422_naming_the_key(memory, flow, key):
    enable(memory, flow)
    reply = put(memory, flow, key, 1)
    assert reply.status == 422 and "path.key" in reply.json["details"]
    assert call(memory, "GET", entry_path(flow, key), claims=PRO).status == 422
    assert state(memory, flow)["usedBytes"] == 0


def test_given_keys_at_the_limits_then_they_are_accepted(memory, flow):
    enable(memory, flow)
    assert put(memory, flow, "k" * 512, 1).status == 200
    assert put(memory, flow, "é" * 256, 1).status == 200
    assert put(memory, flow, "a/b c?d#e", 1).status == 200
    assert "a/b c?d#e" in state(memory, flow)["keys"]


def test_given_a_value_over_350_kb_then_it_is_refused_and_writes_nothing(memory, flow):
    enable(memory, flow)
    assert put(memory, flow, "big", "x" * (350 * 1024 - 2)).status == 200
    too_big = put(memory, flow, "bigger", "x" * (350 * 1024 - 1))
    assert too_big.status == 413 and too_big.json["code"] == "payload_too_large"
    assert "body.value" in too_big.json["details"]
    assert state(memory, flow)["keys"] == ["big"]


def test_given_a_bad_body_then_it_is_422(memory, flow):
    enable(memory, flow)
    assert call(memory, "PUT", entry_path(flow, "k"), body={}, claims=PRO).status == 422
    for ttl in (0, 31_536_001, "soon", 1.5, True, "60"):
        reply = put(memory, flow, "k", 1, ttl=ttl)
        assert reply.status == 422, ttl
        assert "body.ttlSeconds" in reply.json["details"]
    for bad_version in ("v1", "9" * 5000, "-1"):
        bad_match = put(memory, flow, "k", 1, headers={"If-Match": bad_version})
        assert bad_match.status == 422 and "header.if-match" in bad_match.json["details"]
    for enabled in ("maybe", "true", 1, None):
        reply = call(memory, "PATCH", memory_path(flow), body={"enabled": enabled}, claims=PRO)
        assert reply.status == 422 and "body.enabled" in reply.json["details"], enabled
    assert call(memory, "PATCH", memory_path(flow), body={}, claims=PRO).status == 422
    assert state(memory, flow)["keys"] == []


def test_given_disabled_memory_then_entry_routes_are_409_and_entries_are_kept(memory, flow):
    for method in ("GET", "DELETE"):
        reply = call(memory, method, entry_path(flow, "k"), claims=PRO)
        assert reply.status == 409 and reply.json["code"] == "memory_disabled"
    assert put(memory, flow, "k", 1).status == 409
    enable(memory, flow)
    put(memory, flow, "k", "kept")
    used = state(memory, flow)["usedBytes"]
    disabled = call(memory, "PATCH", memory_path(flow), body={"enabled": False}, claims=PRO)
    assert disabled.status == 200 and disabled.json["enabled"] is False
    assert disabled.json["keys"] == ["k"] and disabled.json["usedBytes"] == used
    assert put(memory, flow, "k", 1).status == 409
    assert call(memory, "GET", entry_path(flow, "k"), claims=PRO).status == 409
    enable(memory, flow)
    assert call(memory, "GET", entry_path(flow, "k"), claims=PRO).json["value"] == '"kept"'


def test_given_the_free_tier_then_enabling_is_403_limit_reached(memory, flows):
    created = call(flows, "POST", "/api/v1/flows", body={"name": "Free"}, claims=FREE)
    flow_id = created.json["id"]
    reply = call(memory, "PATCH", memory_path(flow_id), body={"enabled": True}, claims=FREE)
    assert reply.status == 403 and reply.json["code"] == "limit_reached"
    assert reply.json["details"]["tier"] == "free"
    assert state(memory, flow_id, claims=FREE)["maxBytes"] == 0
    assert call(memory, "PATCH", memory_path(flow_id), body={"enabled": False}, claims=FREE).status == 200


def test_given_another_users_flow_then_every_route_is_404(memory, flow):
    enable(memory, flow)
    put(memory, flow, "secret", 1)
    bob = claims_for("user_bob", tier="pro")
    for method, path, body in [
        ("GET", memory_path(flow), None),
        ("PATCH", memory_path(flow), {"enabled": True}),
        ("PATCH", memory_path(flow), {"enabled": False}),
        ("DELETE", memory_path(flow), None),
        ("GET", entry_path(flow, "secret"), None),
        ("PUT", entry_path(flow, "secret"), {"value": 2}),
        ("DELETE", entry_path(flow, "secret"), None),
    ]:
        reply = call(memory, method, path, body=body, claims=bob)
        assert reply.status == 404, (method, path, reply.body)
    assert call(memory, "GET", entry_path(flow, "secret"), claims=PRO).json["value"] == "1"
    assert call(memory, "GET", memory_path("6b1d5b0e-3c55-4a4e-9a0c-000000000000"), claims=PRO).status == 404
    assert call(memory, "GET", memory_path("not-a-uuid"), claims=PRO).status == 422


def test_given_two_flows_of_one_owner_then_neither_sees_the_others_memory(memory, flows, flow):
    other = call(flows, "POST", "/api/v1/flows", body={"name": "Other"}, claims=PRO).json["id"]
    enable(memory, flow)
    enable(memory, other)
    put(memory, flow, "k", "first")
    assert call(memory, "GET", entry_path(other, "k"), claims=PRO).status == 404
    assert state(memory, other)["keys"] == [] and state(memory, other)["usedBytes"] == 0


def test_given_entries_when_memory_is_cleared_then_none_remain_and_used_bytes_is_zero(memory, flow):
    enable(memory, flow)
    for index in range(120):
        put(memory, flow, f"k{index:03d}", index)
    assert call(memory, "DELETE", memory_path(flow), claims=PRO).status == 204
    described = state(memory, flow)
    assert described["keys"] == [] and described["usedBytes"] == 0 and described["enabled"] is True


def test_given_more_than_1000_keys_then_the_first_1000_are_listed_in_order_with_has_more_keys(memory, flow):
    from bloxserver import keys
    from bloxserver.auth import user_id_for
    from bloxserver.dal.table import client, serialize, table_name

    enable(memory, flow)
    partition = keys.memory_pk(user_id_for("user_alice"), flow)
    # Written straight to the table, in reverse order (1001 API calls would only slow the test).
    items = [
        {"PK": partition, "SK": keys.memory_entry_sk(f"key-{index:04d}"), "value": "1", "sizeBytes": 9, "version": 1}
        for index in reversed(range(1001))
    ]
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": serialize(item)}} for item in items[start : start + 25]]
        client().batch_write_item(RequestItems={table_name(): requests})
    described = state(memory, flow)
    assert described["keys"] == [f"key-{index:04d}" for index in range(1000)]
    assert described["hasMoreKeys"] is True


def test_given_a_ttl_then_the_entry_stops_counting_at_expiry_and_the_sweep_removes_it(memory, flow):
    from bloxserver import project_memory

    enable(memory, flow)
    put(memory, flow, "kept", 1)
    entry = put(memory, flow, "brief", "x", ttl=1).json
    assert entry["expiresAt"] is not None
    assert state(memory, flow)["usedBytes"] == 5 + entry["sizeBytes"]
    time.sleep(2.1)
    assert call(memory, "GET", entry_path(flow, "brief"), claims=PRO).status == 404
    described = state(memory, flow)
    assert described["keys"] == ["kept"] and described["usedBytes"] == 5
    assert project_memory.sweep_expired() == 1
    assert state(memory, flow)["usedBytes"] == 5
    assert put(memory, flow, "brief", "again", headers={"If-None-Match": "*"}).status == 200


def test_given_an_expired_entry_not_yet_swept_when_it_is_rewritten_then_its_old_size_is_replaced(memory, flow):
    from bloxserver import project_memory

    enable(memory, flow)
    put(memory, flow, "brief", "x" * 50, ttl=1)
    time.sleep(2.1)
    rewritten = put(memory, flow, "brief", "y", headers={"If-None-Match": "*"}).json
    assert state(memory, flow)["usedBytes"] == rewritten["sizeBytes"]
    assert project_memory.sweep_expired() == 0
    assert state(memory, flow)["usedBytes"] == rewritten["sizeBytes"]


def test_given_expired_entries_at_the_cap_then_they_make_room_for_a_new_write(memory, flow, monkeypatch):
    from bloxserver import limits
    from bloxserver.contract import Tier

    monkeypatch.setitem(limits.TIER_LIMITS, Tier.PRO, dataclasses.replace(limits.TIER_LIMITS[Tier.PRO], project_memory_bytes=1000))
    enable(memory, flow)
    assert put(memory, flow, "a", "x" * 900, ttl=1).status == 200
    assert put(memory, flow, "b", "x" * 900).status == 413
    time.sleep(2.1)
    written = put(memory, flow, "b", "x" * 900)
    assert written.status == 200, written.body
    assert state(memory, flow)["usedBytes"] == written.json["sizeBytes"]


def test_given_the_cap_then_a_write_past_it_is_413_memory_full_and_writes_nothing(memory, flow, monkeypatch):
    from bloxserver import limits
    from bloxserver.contract import Tier

    monkeypatch.setitem(limits.TIER_LIMITS, Tier.PRO, dataclasses.replace(limits.TIER_LIMITS[Tier.PRO], project_memory_bytes=1000))
    enable(memory, flow)
    assert put(memory, flow, "a", "x" * 900).status == 200  # 1 + 902 bytes
    full = put(memory, flow, "b", "x" * 100)
    assert full.status == 413 and full.json["code"] == "memory_full"
    assert full.json["details"]["usedBytes"] == 903 and full.json["details"]["maxBytes"] == 1000
    assert call(memory, "GET", entry_path(flow, "b"), claims=PRO).status == 404
    assert put(memory, flow, "b", "x" * 90).status == 200  # 1 + 92: exactly 996
    assert put(memory, flow, "a", "short").status == 200  # shrinking is always allowed


def test_given_30_concurrent_writers_at_the_cap_then_it_is_never_overshot_and_used_bytes_is_exact(
    memory, flow, monkeypatch
):
    from bloxserver import limits
    from bloxserver.contract import Tier

    monkeypatch.setitem(limits.TIER_LIMITS, Tier.PRO, dataclasses.replace(limits.TIER_LIMITS[Tier.PRO], project_memory_bytes=2000))
    enable(memory, flow)

    def write(index: int) -> int:
        return put(memory, flow, f"w{index:02d}", "x" * (100 + index)).status

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(write, range(30)))
    assert set(statuses) == {200, 413}
    described = state(memory, flow)
    entries = [call(memory, "GET", entry_path(flow, key), claims=PRO).json for key in described["keys"]]
    assert len(entries) == statuses.count(200)
    assert all(entry["sizeBytes"] == len(entry["key"]) + len(entry["value"]) for entry in entries)
    assert described["usedBytes"] == sum(entry["sizeBytes"] for entry in entries) <= 2000
    assert described["usedBytes"] > 2000 - 130  # the writers filled it: no refusal left room for the smallest


def test_given_concurrent_overwrites_of_one_key_then_used_bytes_is_that_entrys_size(memory, flow):
    enable(memory, flow)

    def write(index: int) -> int:
        return put(memory, flow, "shared", "x" * index).status

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert set(pool.map(write, range(20))) == {200}
    entry = call(memory, "GET", entry_path(flow, "shared"), claims=PRO).json
    assert state(memory, flow)["usedBytes"] == entry["sizeBytes"]


def test_given_a_downgrade_below_what_is_stored_then_data_stays_readable_and_growth_is_refused(memory, flow, users):
    enable(memory, flow)
    put(memory, flow, "a", "x" * 100)
    put(memory, flow, "b", "x" * 100)
    # The owner is now on a tier whose memory is smaller than what is stored (a small cap stands in for it).
    from bloxserver import limits
    from bloxserver.contract import Tier

    original = limits.TIER_LIMITS[Tier.PAID]
    limits.TIER_LIMITS[Tier.PAID] = dataclasses.replace(original, project_memory_bytes=150)
    try:
        assert call(memory, "GET", entry_path(flow, "a"), claims=PAID).status == 200
        full = put(memory, flow, "c", 1, claims=PAID)
        assert full.status == 413 and full.json["details"]["maxBytes"] == 150
        assert put(memory, flow, "a", "x" * 101, claims=PAID).status == 413
        assert put(memory, flow, "a", "x", claims=PAID).status == 200  # shrinking is allowed
        assert call(memory, "DELETE", entry_path(flow, "b"), claims=PAID).status == 204
        assert put(memory, flow, "c", 1, claims=PAID).status == 200  # under the cap again
    finally:
        limits.TIER_LIMITS[Tier.PAID] = original


def test_given_a_stored_tier_and_no_claim_then_the_stored_tiers_cap_applies_at_once_after_a_change(memory, flows):
    from bloxserver.auth import user_id_for
    from bloxserver.dal import users as user_store

    carol = claims_for("user_carol", tier="pro")
    carol_unclaimed = claims_for("user_carol")
    flow_id = call(flows, "POST", "/api/v1/flows", body={"name": "Carol's"}, claims=carol).json["id"]
    enable(memory, flow_id, claims=carol)
    assert put(memory, flow_id, "k", 1, claims=carol_unclaimed).status == 200
    user_store.record_tier(user_id_for("user_carol"), "free", int(time.time()) + 10)
    refused = put(memory, flow_id, "k2", 1, claims=carol_unclaimed)
    assert refused.status == 413 and refused.json["details"]["maxBytes"] == 0
    assert call(memory, "GET", entry_path(flow_id, "k"), claims=carol_unclaimed).status == 200


def test_given_a_deleted_flow_then_its_memory_is_deleted_with_it(memory, flows, flow):
    from bloxserver.auth import user_id_for
    from bloxserver.dal.table import partition_keys
    from bloxserver import keys

    enable(memory, flow)
    put(memory, flow, "k", 1)
    put(memory, flow, "t", 1, ttl=100)
    assert call(flows, "DELETE", f"/api/v1/flows/{flow}", claims=PRO).status == 204
    assert partition_keys(keys.memory_pk(user_id_for("user_alice"), flow)) == []
    assert call(memory, "GET", memory_path(flow), claims=PRO).status == 404


def test_given_a_deleted_user_then_their_flows_memory_is_deleted(memory, flow):
    from bloxserver import cleanup, keys
    from bloxserver.auth import user_id_for
    from bloxserver.dal.table import partition_keys

    enable(memory, flow)
    put(memory, flow, "k", 1)
    cleanup.delete_user_and_dependents(user_id_for("user_alice"))
    assert partition_keys(keys.memory_pk(user_id_for("user_alice"), flow)) == []
