"""Execution items, the per-day counters beside them, running markers and remembered deliveries.

Every state change of an execution is one transaction with the counters it moves, so counts are exact.
Layout and access patterns: docs/executions.md.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal import execution_logs
from bloxserver.dal.users import USAGE_TOKENS
from bloxserver.dal.table import (
    cancellation_codes,
    client,
    delete_items,
    deserialize,
    error_code,
    first_action_failed,
    get_item,
    key,
    partition_keys,
    query_items,
    serialize,
    table_name,
    transact_write,
)
from bloxserver.dal.users import tier_check

STATUSES = ("running", "success", "error", "timeout")
TRIGGER_TYPES = ("webhook", "schedule", "manual")
RUNNING_MARKER_SHARDS = 4
SUMMARY_FIELDS = "id, #status, triggerType, startedAt, durationMs, expiresAt"
BATCH_GET_LIMIT = 100
# Executions per batched claim: 3 actions each, within a transaction's 100 actions.
MAX_UNITS_PER_TRANSACTION = 33
# Executions per batched end: 2 actions each (3 with a reason: its summary item), plus at most a day-counter update
# and two LLM token usage updates (the owner's month and day) each.
MAX_ENDINGS_PER_TRANSACTION = 20
MAX_REASON_ENDS_PER_TRANSACTION = 16


class FlowNotRunning(Exception):
    """The start's flow check failed: `status` is the flow's status, None when the flow does not exist."""

    def __init__(self, status: str | None) -> None:
        super().__init__(status)
        self.status = status


class MonthlyQuotaFull(Exception):
    pass


class FlowVersionChanged(Exception):
    """The start's flow check failed on the flow running something else than guessed: another version, or (for a run
    at the door) the same version started again. `version` is the one it runs, `flow` the flow item as it is."""

    def __init__(self, version: int, flow: dict[str, Any]) -> None:
        super().__init__(version)
        self.version = version
        self.flow = flow


class TriggerDisabled(Exception):
    """The start's trigger check failed because the trigger exists but is disabled (a schedule's firing)."""


class TriggerGone(Exception):
    """The start's trigger check failed: the item proving the trigger is gone (a webhook token's lookup item: the
    trigger deleted or the token regenerated; a schedule trigger's own item: the trigger deleted)."""


class Throttled(Exception):
    """The start's bucket condition failed: `tat` is the bucket's time as stored (0 when it has none yet)."""

    def __init__(self, tat: int) -> None:
        super().__init__(tat)
        self.tat = tat


@dataclass(frozen=True)
class Throttle:
    """A token bucket kept as one number on an item (GCRA): `tat`, the time (µs) at which the bucket is full again.
    A start at `now_us` passes while tat <= now + (burst - 1) × interval and moves tat one interval on, from now
    when tat is past. DynamoDB has no max(), so the writer guesses which case holds (`idle`: tat is past) and a
    wrong guess fails the condition and returns tat (Throttled): one more round trip, never a wrong count."""

    key: dict[str, Any]
    now_us: int
    interval_us: int
    burst: int
    idle: bool
    # The token item's revision as the ingress read it (its delivery rules: dal.triggers.update_trigger); another is
    # taken as the trigger gone, so the ingress reads the rules afresh.
    revision: int = 0

    @property
    def latest_tat_us(self) -> int:
        """The latest stored tat under which a start still passes."""
        return self.now_us + (self.burst - 1) * self.interval_us

    def action(self) -> dict[str, Any]:
        if self.idle:
            update, condition = "SET #tat = :next", "attribute_not_exists(#tat) OR #tat < :now"
            values = {":next": self.now_us + self.interval_us, ":now": self.now_us}
        else:
            update, condition = "SET #tat = #tat + :interval", "#tat BETWEEN :now AND :latest"
            values = {":interval": self.interval_us, ":now": self.now_us, ":latest": self.latest_tat_us}
        unrevised = " OR attribute_not_exists(#revision)" if self.revision == 0 else ""
        return {
            "Update": {
                "TableName": table_name(),
                "Key": self.key,
                "UpdateExpression": update,
                # The item must exist: for a webhook it is the token's, gone once the token is regenerated.
                "ConditionExpression": f"attribute_exists(PK) AND (#revision = :revision{unrevised}) AND ({condition})",
                "ExpressionAttributeNames": {"#tat": "throttleTat", "#revision": "revision"},
                "ExpressionAttributeValues": serialize({**values, ":revision": self.revision}),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }


class ProfileChanged(Exception):
    """The start's profile condition failed: `profile` is the owner's stored profile (None: there is none)."""

    def __init__(self, profile: dict[str, Any] | None) -> None:
        super().__init__()
        self.profile = profile


class RetryRefused(Exception):
    """The retry's original changed since it was read: gone, or (when only a first retry was asked) already
    retried."""


class DeliveryAlreadyAccepted(Exception):
    """The delivery key was seen within its window: `execution_id` is the execution it started."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(execution_id)
        self.execution_id = execution_id


def status_counter(status: str) -> str:
    return f"s_{status}"


def trigger_counter(trigger_type: str) -> str:
    return f"t_{trigger_type}"


def status_trigger_counter(status: str, trigger_type: str) -> str:
    return f"st_{status}_{trigger_type}"


def reason_counter(reason: str) -> str:
    return f"r_{reason}"


def reason_trigger_counter(reason: str, trigger_type: str) -> str:
    return f"rt_{reason}_{trigger_type}"


def marker_shard(execution_id: str) -> int:
    return int(execution_id[-2:], 16) % RUNNING_MARKER_SHARDS


def execution_key(flow_id: str, execution_id: str) -> dict[str, Any]:
    return key(keys.flow_pk(flow_id), keys.execution_sk(execution_id))


def _marker_key(execution_id: str, marker_sk: str) -> dict[str, Any]:
    return key(keys.running_marker_pk(marker_shard(execution_id)), marker_sk)


def _marker_put(execution: dict[str, Any], marker_sk: str, deadline_iso: str) -> dict[str, Any]:
    item = {
        **_marker_key(execution["id"], marker_sk),
        **serialize(
            {
                "entity": "runningMarker",
                "deadlineAt": deadline_iso,
                "executionId": execution["id"],
                "flowId": execution["flowId"],
                "userId": execution["userId"],
                "triggerType": execution["triggerType"],
                "startedAt": execution["startedAt"],
                "expiresAt": execution["expiresAt"],
            }
        ),
    }
    return {"Put": {"TableName": table_name(), "Item": item}}


def _stats_update(execution: dict[str, Any], adds: dict[str, int], sets: dict[str, Any]) -> dict[str, Any]:
    names: dict[str, str] = {"#expiresAt": "expiresAt"}
    values: dict[str, Any] = {":expiresAt": execution["expiresAt"]}
    add_parts, set_parts = [], ["#expiresAt = if_not_exists(#expiresAt, :expiresAt)"]
    for index, (counter, amount) in enumerate(adds.items()):
        names[f"#a{index}"] = counter
        values[f":a{index}"] = amount
        add_parts.append(f"#a{index} :a{index}")
    for index, (field, value) in enumerate(sets.items()):
        names[f"#s{index}"] = field
        values[f":s{index}"] = value
        set_parts.append(f"#s{index} = :s{index}")
    return {
        "Update": {
            "TableName": table_name(),
            "Key": key(keys.flow_pk(execution["flowId"]), keys.flow_stats_day_sk(execution["startedAt"])),
            "UpdateExpression": "SET " + ", ".join(set_parts) + " ADD " + ", ".join(add_parts),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
        }
    }


def record_start(
    execution: dict[str, Any],
    *,
    marker_sk: str,
    deadline_iso: str,
    month_limit: int,
    delivery: tuple[str, int] | None,
    now_epoch: int,
    profile_condition: tuple[str, dict[str, Any]] | None = None,
    trigger_check_key: dict[str, Any] | None = None,
    throttle: Throttle | None = None,
    first_retry_only: bool = False,
    finished: FinishedAtStart | None = None,
    flow_updated_at: str | None = None,
) -> None:
    """One transaction: the flow is running the execution's `flowVersion` (else FlowVersionChanged), the month's count is below `month_limit` (and counts this one),
    the day's count, the execution, its flow's day counters, its running marker, when `profile_condition`
    (expression on `#tier`, its values) is given the owner's profile meets it (else ProfileChanged, with the
    profile), when `trigger_check_key` is given that item exists (else TriggerGone), when `throttle` is given its
    bucket lets one more through (else Throttled; TriggerGone when its item is gone), when the execution has a
    `retryOf`, that original (an ended execution of the flow, not yet retried if `first_retry_only`) records it as
    `retriedBy` (else RetryRefused), and when `delivery` (pk, expiresAt) is given, the remembered delivery,
    written only if that key is unseen or expired.

    With `finished` (a run at the door, before anything was written) the execution is recorded as it ended, with its
    log, its day counters moved as a start and an end would move them, and no running marker; with
    `flow_updated_at` the flow item must also be the one the run read (a start re-pins WASM modules without a new
    version; else FlowVersionChanged)."""
    user_id, flow_id, trigger_type = execution["userId"], execution["flowId"], execution["triggerType"]
    user_pk = keys.user_pk(user_id)
    item = {
        "PK": keys.flow_pk(flow_id),
        "SK": keys.execution_sk(execution["id"]),
        "GSI1PK": keys.executions_by_status_type_pk(flow_id, "running", trigger_type),
        "GSI1SK": keys.execution_sk(execution["id"]),
        "GSI2PK": keys.executions_by_owner_pk(user_id),
        "GSI2SK": keys.execution_sk(execution["id"]),
        "entity": "execution",
        "runningMarker": marker_sk,
        **execution,
    }
    counters = {
        "total": 1,
        status_counter("running"): 1,
        trigger_counter(trigger_type): 1,
        status_trigger_counter("running", trigger_type): 1,
    }
    # A flow stored before versions existed has none: it runs version 1.
    flow_condition = "#status = :running AND (#version = :version" + (
        " OR attribute_not_exists(#version))" if execution["flowVersion"] == 1 else ")"
    )
    flow_names = {"#status": "status", "#version": "version"}
    flow_values: dict[str, Any] = {":running": "running", ":version": execution["flowVersion"]}
    if finished is not None:
        item.update(finished.recorded_fields())
        del item["runningMarker"]
        for counter, amount in _end_counters(finished.end).items():
            counters[counter] = counters.get(counter, 0) + amount
    if flow_updated_at is not None:
        flow_condition += " AND updatedAt = :updatedAt"
        flow_values[":updatedAt"] = flow_updated_at
    actions: list[dict[str, Any]] = [
        {
            "ConditionCheck": {
                "TableName": table_name(),
                "Key": key(user_pk, keys.flow_sk(flow_id)),
                "ConditionExpression": flow_condition,
                "ExpressionAttributeNames": flow_names,
                "ExpressionAttributeValues": serialize(flow_values),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {
            "Update": {
                "TableName": table_name(),
                "Key": key(user_pk, keys.usage_month_sk(execution["startedAt"])),
                "UpdateExpression": "ADD #count :one",
                "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
                "ExpressionAttributeNames": {"#count": "count"},
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(month_limit)}},
            }
        },
        {
            "Update": {
                "TableName": table_name(),
                "Key": key(user_pk, keys.usage_day_sk(execution["startedAt"])),
                "UpdateExpression": "ADD #count :one",
                "ExpressionAttributeNames": {"#count": "count"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {
            "Put": {
                "TableName": table_name(),
                "Item": serialize(item),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        },
        _stats_update(execution, counters, {"lastExecutedAt": execution["startedAt"]}),
    ]
    if finished is None:
        actions.append(_marker_put(execution, marker_sk, deadline_iso))
    else:
        actions.extend(
            {"Put": {"TableName": table_name(), "Item": log_item}}
            for log_item in execution_logs.stored_items(finished.logs)
        )
    profile_check_at = None
    if profile_condition is not None:
        profile_check_at = len(actions)
        actions.append(tier_check(user_id, profile_condition))
    trigger_check_at = None
    if trigger_check_key is not None:
        trigger_check_at = len(actions)
        actions.append(
            {
                "ConditionCheck": {
                    "TableName": table_name(),
                    "Key": trigger_check_key,
                    # A trigger stored before `enabled` existed is enabled.
                    "ConditionExpression": "attribute_exists(PK) AND NOT #enabled = :false",
                    "ExpressionAttributeNames": {"#enabled": "enabled"},
                    "ExpressionAttributeValues": {":false": {"BOOL": False}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        )
    throttle_at = None
    if throttle is not None:
        throttle_at = len(actions)
        actions.append(throttle.action())
    retry_at = None
    if execution.get("retryOf"):
        retry_at = len(actions)
        condition = "attribute_exists(PK) AND #status <> :running"
        if first_retry_only:
            condition += " AND attribute_not_exists(retriedBy)"
        actions.append(
            {
                "Update": {
                    "TableName": table_name(),
                    "Key": execution_key(flow_id, execution["retryOf"]),
                    "UpdateExpression": "SET retriedBy = :retry",
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": serialize({":retry": execution["id"], ":running": "running"}),
                }
            }
        )
    if delivery is not None:
        delivery_pk, delivery_expires_at = delivery
        actions.append(
            {
                "Put": {
                    "TableName": table_name(),
                    "Item": serialize(
                        {
                            "PK": delivery_pk,
                            "SK": keys.IDEMPOTENCY_SK,
                            "entity": "delivery",
                            "executionId": execution["id"],
                            "expiresAt": delivery_expires_at,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(PK) OR expiresAt < :now",
                    "ExpressionAttributeValues": {":now": {"N": str(now_epoch)}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        )
    try:
        transact_write(actions)
    except ClientError as exc:
        if error_code(exc) != "TransactionCanceledException":
            raise
        reasons = exc.response.get("CancellationReasons", [])
        codes = cancellation_codes(exc)
        # A gone trigger answers first: it is a 404 whatever the flow's state. Then a replayed delivery answers
        # with its first execution, whatever else changed since.
        if trigger_check_at is not None and codes[trigger_check_at] == "ConditionalCheckFailed":
            raise (TriggerDisabled() if reasons[trigger_check_at].get("Item") else TriggerGone()) from exc
        bucket = None
        if throttle_at is not None and codes[throttle_at] == "ConditionalCheckFailed":
            bucket = reasons[throttle_at].get("Item")
            if bucket is None or int(deserialize(bucket).get("revision", 0)) != throttle.revision:
                raise TriggerGone() from exc
        if delivery is not None and codes[-1] == "ConditionalCheckFailed":
            raise DeliveryAlreadyAccepted(deserialize(reasons[-1]["Item"])["executionId"]) from exc
        if codes[0] == "ConditionalCheckFailed":
            flow = deserialize(reasons[0]["Item"]) if reasons[0].get("Item") else None
            if flow is not None and flow.get("status") == "running":
                raise FlowVersionChanged(int(flow.get("version", 1)), flow) from exc
            raise FlowNotRunning(flow.get("status") if flow else None) from exc
        if bucket is not None:
            raise Throttled(int(deserialize(bucket).get("throttleTat", 0))) from exc
        if profile_check_at is not None and codes[profile_check_at] == "ConditionalCheckFailed":
            profile = reasons[profile_check_at].get("Item")
            raise ProfileChanged(deserialize(profile) if profile else None) from exc
        if retry_at is not None and codes[retry_at] == "ConditionalCheckFailed":
            raise RetryRefused() from exc
        if codes[1] == "ConditionalCheckFailed":
            raise MonthlyQuotaFull() from exc
        raise


def forget_delivery(delivery_pk: str, execution_id: str) -> None:
    """Forget the remembered delivery `delivery_pk` if it still names `execution_id` (that execution was never
    queued), so a retry of the delivery starts a new execution instead of replaying a dead one."""
    try:
        client().delete_item(
            TableName=table_name(),
            Key=key(delivery_pk, keys.IDEMPOTENCY_SK),
            ConditionExpression="executionId = :executionId",
            ExpressionAttributeValues={":executionId": {"S": execution_id}},
        )
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


def get_execution(flow_id: str, execution_id: str) -> dict[str, Any] | None:
    return get_item(execution_key(flow_id, execution_id))


def get_executions_and_flows(
    refs: list[tuple[str, str, str]], owner_sks: tuple[str, ...] = ()
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """The executions and their flows named by `refs` (userId, flowId, executionId), and the items `owner_sks`
    of each owner's partition (profile, usage counters), in one round trip for a batch (BatchGetItem, 100 keys;
    unprocessed keys are read again). Returns executions by id, flows by (userId, flowId) and owner items by
    (userId, SK); missing items are absent."""
    # (PK, SK) → where the item goes: ("execution", id), ("flow", (userId, flowId)) or ("owner", (userId, SK)).
    # Keys are unique per request.
    wanted: dict[tuple[str, str], tuple[str, Any]] = {}
    for user_id, flow_id, execution_id in refs:
        wanted[(keys.flow_pk(flow_id), keys.execution_sk(execution_id))] = ("execution", execution_id)
        wanted[(keys.user_pk(user_id), keys.flow_sk(flow_id))] = ("flow", (user_id, flow_id))
        for sk in owner_sks:
            wanted[(keys.user_pk(user_id), sk)] = ("owner", (user_id, sk))
    executions: dict[str, dict[str, Any]] = {}
    flows: dict[tuple[str, str], dict[str, Any]] = {}
    owners: dict[tuple[str, str], dict[str, Any]] = {}
    found: dict[str, dict[Any, dict[str, Any]]] = {"execution": executions, "flow": flows, "owner": owners}
    pending = [key(pk, sk) for pk, sk in wanted]
    while pending:
        chunk, pending = pending[:BATCH_GET_LIMIT], pending[BATCH_GET_LIMIT:]
        request: dict[str, Any] = {table_name(): {"Keys": chunk, "ConsistentRead": True}}
        while request:
            response = client().batch_get_item(RequestItems=request)
            for raw in response.get("Responses", {}).get(table_name(), []):
                item = deserialize(raw)
                kind, name = wanted[(item["PK"], item["SK"])]
                found[kind][name] = item
            request = response.get("UnprocessedKeys") or {}
    return executions, flows, owners


@dataclass(frozen=True)
class Claim:
    """Taking `execution` for a run at `claimed_at`, its running marker moved to `marker_sk` (`deadline_iso`)."""

    execution: dict[str, Any]
    claimed_at: str
    marker_sk: str
    deadline_iso: str


def _claim_actions(claim_: Claim) -> list[dict[str, Any]]:
    execution = claim_.execution
    return _marker_move_actions(
        execution,
        execution["runningMarker"],
        claim_.marker_sk,
        claim_.deadline_iso,
        "SET claimedAt = :claimedAt, runningMarker = :marker",
        "attribute_not_exists(claimedAt)",
        {":claimedAt": claim_.claimed_at},
    )


def _transact_each_conditional(
    units: list[Any], actions_of: Any, conditional_index: Any, per_transaction: int = MAX_UNITS_PER_TRANSACTION
) -> list[bool]:
    """Write `units` (each a group of actions whose first one carries the unit's condition) in as few
    transactions as possible, each unit still individually conditional: when a transaction is cancelled because
    some units' conditions failed, those units are answered False (a failed condition never becomes true again
    for these writes: they require a running execution in a given claim state) and the others are written again
    without them. Returns, per unit, whether it was written. Raises on any other failure (nothing of the failing
    transaction was written). `actions_of(units)` builds one transaction's actions; `conditional_index(units)`
    maps an action index to the unit whose condition it carries (None for other actions)."""
    written = [True] * len(units)
    pending = list(range(len(units)))
    while pending:
        chunk = pending[:per_transaction]
        try:
            transact_write(actions_of([units[i] for i in chunk]))
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            index_of = conditional_index([units[i] for i in chunk])
            lost = {
                chunk[index_of[position]]
                for position, code in enumerate(cancellation_codes(exc))
                if code == "ConditionalCheckFailed" and position in index_of
            }
            if not lost:
                raise
            for unit in lost:
                written[unit] = False
            pending = [i for i in pending if i not in lost]
            continue
        pending = pending[len(chunk) :]
    return written


def claim_many(claims: list[Claim]) -> list[bool]:
    """Take each execution for its run, only while it is running and unclaimed, moving its running marker to the
    run's deadline: one transaction for the whole batch, each claim individually conditional (see
    _transact_each_conditional). False for a claim lost to another delivery or an execution that already ended."""

    def actions_of(chunk: list[Claim]) -> list[dict[str, Any]]:
        return [action for claim_ in chunk for action in _claim_actions(claim_)]

    def conditional_index(chunk: list[Claim]) -> dict[int, int]:
        return {3 * unit: unit for unit in range(len(chunk))}

    return _transact_each_conditional(claims, actions_of, conditional_index)


def claim(execution: dict[str, Any], claimed_at: str, marker_sk: str, deadline_iso: str) -> bool:
    """Take the execution for this run: only while it is running and unclaimed. Moves its running marker to the
    run's deadline. False: another delivery claimed it, or it already ended."""
    return claim_many([Claim(execution, claimed_at, marker_sk, deadline_iso)])[0]


def _marker_move_actions(
    execution: dict[str, Any],
    from_sk: str,
    to_sk: str,
    to_deadline: str,
    update: str,
    condition: str,
    values: dict[str, Any],
) -> list[dict[str, Any]]:
    """Moving a running execution's marker from `from_sk` to `to_sk`, with `update` (which sets runningMarker to
    :marker) applied under `condition` (besides running): the update first, carrying the condition."""
    return [
        {
            "Update": {
                "TableName": table_name(),
                "Key": execution_key(execution["flowId"], execution["id"]),
                "UpdateExpression": update,
                "ConditionExpression": f"#status = :running AND {condition}",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": serialize({":marker": to_sk, ":running": "running", **values}),
            }
        },
        {"Delete": {"TableName": table_name(), "Key": _marker_key(execution["id"], from_sk)}},
        _marker_put(execution, to_sk, to_deadline),
    ]


def _write_unless_first_fails(actions: list[dict[str, Any]]) -> bool:
    """One transaction (a marker move, a deletion) whose first action is conditional; False when that condition
    fails."""
    try:
        transact_write(actions)
    except ClientError as exc:
        if first_action_failed(exc):
            return False
        raise
    return True


def release_claim(execution: dict[str, Any], claim_: Claim) -> bool:
    """Undo `claim_` on an execution that did not run (its invocation ran out of time): unclaimed again, with its
    queued running marker (`execution["runningMarker"]`) back, so a redelivery can claim and run it. Only while
    the claim holds and it is still running; False otherwise."""
    queued_marker = execution["runningMarker"]
    return _write_unless_first_fails(
        _marker_move_actions(
            execution,
            claim_.marker_sk,
            queued_marker,
            queued_marker.rpartition("#")[0],
            "SET runningMarker = :marker REMOVE claimedAt",
            "claimedAt = :claimedAt",
            {":claimedAt": claim_.claimed_at},
        )
    )


def move_queued_marker(execution: dict[str, Any], marker_sk: str, deadline_iso: str) -> bool:
    """Move an unclaimed execution's marker (`execution["runningMarker"]`) to `marker_sk` (`deadline_iso`); False if
    it was claimed, ended or its marker moved since it was read."""
    return _write_unless_first_fails(
        _marker_move_actions(
            execution,
            execution["runningMarker"],
            marker_sk,
            deadline_iso,
            "SET runningMarker = :marker",
            "attribute_not_exists(claimedAt) AND runningMarker = :read",
            {":read": execution["runningMarker"]},
        )
    )


@dataclass(frozen=True)
class Ending:
    """Ending `execution` with `status` and `result` (outputPayload or errorMessage). `claimed_at`: only if that
    run's claim still holds; `unclaimed`: only if nobody claimed it; `marker_unmoved`: only if its running marker
    is still the one read (so the marker the end deletes is the live one). `reason` (a contract.EndReason) is recorded
    on the execution, counted, and indexed for listings."""

    execution: dict[str, Any]
    status: str
    completed_at: str
    duration_ms: int
    result: dict[str, Any]
    claimed_at: str | None = None
    unclaimed: bool = False
    llm_tokens: int = 0  # the run's LLM tokens, added to its owner's usage of the completion's month and day
    marker_unmoved: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class FinishedAtStart:
    """An execution that ran to its end before its start was recorded (the fast path, docs/executions.md): how it
    ended (`end`, unconditional: nothing else knows of it yet) and its log."""

    end: Ending
    logs: execution_logs.LogItems

    def ended_fields(self) -> dict[str, Any]:
        """The execution's fields that its end sets (status, completion, duration, result)."""
        end = self.end
        fields = {"status": end.status, "completedAt": end.completed_at, "durationMs": end.duration_ms}
        fields.update((name, value) for name, value in end.result.items() if value is not None)
        return fields

    def recorded_fields(self) -> dict[str, Any]:
        """What the execution item holds beyond its start's fields: what the queue path's claim and end set (the
        door claimed it when it started)."""
        execution = self.end.execution
        return {
            **self.ended_fields(),
            "GSI1PK": keys.executions_by_status_type_pk(execution["flowId"], self.end.status, execution["triggerType"]),
            "claimedAt": execution["startedAt"],
        }


def _end_update(ending: Ending) -> dict[str, Any]:
    execution, status = ending.execution, ending.status
    flow_id, trigger_type = execution["flowId"], execution["triggerType"]
    names = {"#status": "status", "#gsi1pk": "GSI1PK"}
    values: dict[str, Any] = {
        ":running": "running",
        ":status": status,
        ":gsi1pk": keys.executions_by_status_type_pk(flow_id, status, trigger_type),
        ":completedAt": ending.completed_at,
        ":durationMs": ending.duration_ms,
    }
    sets = ["#status = :status", "#gsi1pk = :gsi1pk", "completedAt = :completedAt", "durationMs = :durationMs"]
    result = dict(ending.result, reason=ending.reason)
    for index, (field, value) in enumerate(result.items()):
        if value is not None:
            names[f"#r{index}"] = field
            values[f":r{index}"] = value
            sets.append(f"#r{index} = :r{index}")
    conditions = ["#status = :running"]
    if ending.claimed_at is not None:
        values[":claimedAt"] = ending.claimed_at
        conditions.append("claimedAt = :claimedAt")
    if ending.unclaimed:
        conditions.append("attribute_not_exists(claimedAt)")
    if ending.marker_unmoved:
        values[":marker"] = execution["runningMarker"]
        conditions.append("runningMarker = :marker")
    return {
        "Update": {
            "TableName": table_name(),
            "Key": execution_key(flow_id, execution["id"]),
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE runningMarker",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
        }
    }


def _end_counters(ending: Ending) -> dict[str, int]:
    status, trigger_type = ending.status, ending.execution["triggerType"]
    counters = {
        status_counter("running"): -1,
        status_counter(status): 1,
        status_trigger_counter("running", trigger_type): -1,
        status_trigger_counter(status, trigger_type): 1,
        "durationMsSum": ending.duration_ms,
        "finished": 1,
    }
    if ending.reason is not None:
        counters[reason_counter(ending.reason)] = 1
        counters[reason_trigger_counter(ending.reason, trigger_type)] = 1
    return counters


def _reason_summary_put(ending: Ending) -> dict[str, Any]:
    """The summary an ending with a reason leaves beside its execution: what a listing shows of it, final."""
    execution = ending.execution
    item = {
        "PK": keys.flow_pk(execution["flowId"]),
        "SK": keys.execution_reason_sk(ending.reason, execution["triggerType"], execution["id"]),
        "entity": "executionReason",
        "id": execution["id"],
        "status": ending.status,
        "triggerType": execution["triggerType"],
        "startedAt": execution["startedAt"],
        "durationMs": ending.duration_ms,
        "expiresAt": execution["expiresAt"],
    }
    return {"Put": {"TableName": table_name(), "Item": serialize(item)}}


def _end_actions(endings: list[Ending]) -> list[dict[str, Any]]:
    """Per ending its execution update (first, carrying the condition), marker delete and, with a reason, its
    summary; then one update per day-counter item, the counters of the endings sharing it summed (a transaction
    touches an item once)."""
    actions: list[dict[str, Any]] = []
    counters: dict[tuple[str, str], tuple[dict[str, Any], dict[str, int]]] = {}
    for ending in endings:
        execution = ending.execution
        actions.append(_end_update(ending))
        marker = _marker_key(execution["id"], execution["runningMarker"])
        actions.append({"Delete": {"TableName": table_name(), "Key": marker}})
        if ending.reason is not None:
            actions.append(_reason_summary_put(ending))
        day = (execution["flowId"], keys.flow_stats_day_sk(execution["startedAt"]))
        first, sums = counters.setdefault(day, (execution, {}))
        for counter, amount in _end_counters(ending).items():
            sums[counter] = sums.get(counter, 0) + amount
    actions.extend(_stats_update(first, sums, {}) for first, sums in counters.values())
    tokens: dict[tuple[str, str], int] = {}
    for ending in endings:
        if ending.llm_tokens:
            for usage_sk in (keys.usage_month_sk(ending.completed_at), keys.usage_day_sk(ending.completed_at)):
                usage_key = (ending.execution["userId"], usage_sk)
                tokens[usage_key] = tokens.get(usage_key, 0) + ending.llm_tokens
    actions.extend(_token_usage_update(user_id, usage_sk, count) for (user_id, usage_sk), count in tokens.items())
    return actions


def _token_usage_update(user_id: str, usage_sk: str, tokens: int) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table_name(),
            "Key": key(keys.user_pk(user_id), usage_sk),
            "UpdateExpression": "ADD #tokens :tokens",
            "ExpressionAttributeNames": {"#tokens": USAGE_TOKENS},
            "ExpressionAttributeValues": {":tokens": {"N": str(tokens)}},
        }
    }


def finish_many(endings: list[Ending]) -> list[bool]:
    """End running executions (status, completion, result), move their flows' day counters and drop their running
    markers: one transaction for the whole batch, each ending individually conditional (see
    _transact_each_conditional). False for an execution that had already ended (or is gone)."""

    def conditional_index(chunk: list[Ending]) -> dict[int, int]:
        index, position = {}, 0
        for unit, ending in enumerate(chunk):
            index[position] = unit
            position += 2 if ending.reason is None else 3
        return index

    with_reasons = any(ending.reason is not None for ending in endings)
    per_transaction = MAX_REASON_ENDS_PER_TRANSACTION if with_reasons else MAX_ENDINGS_PER_TRANSACTION
    return _transact_each_conditional(endings, _end_actions, conditional_index, per_transaction)


def _query_newest(kwargs: dict[str, Any], limit: int, now_epoch: int) -> list[dict[str, Any]]:
    """Up to `limit` unexpired items of one query, newest first (TTL deletes lag, so expired ones are skipped)."""
    return query_items(
        {
            **kwargs,
            "ScanIndexForward": False,
            "FilterExpression": "expiresAt > :now",
            "ExpressionAttributeValues": {**kwargs["ExpressionAttributeValues"], ":now": {"N": str(now_epoch)}},
        },
        limit,
    )


def list_summaries(
    flow_id: str, statuses: tuple[str, ...], trigger_types: tuple[str, ...], limit: int, now_epoch: int
) -> list[dict[str, Any]]:
    """The newest `limit` executions of the flow with a status in `statuses` and a trigger type in
    `trigger_types`. Unfiltered: one query of the flow's partition. Filtered: one GSI1 query per
    (status, trigger type) pair, each bounded by `limit`, merged newest first."""
    summary = {"ProjectionExpression": SUMMARY_FIELDS, "ExpressionAttributeNames": {"#status": "status"}}
    if statuses == STATUSES and trigger_types == TRIGGER_TYPES:
        return _query_newest(
            {
                **summary,
                "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
                "ExpressionAttributeValues": {
                    ":pk": {"S": keys.flow_pk(flow_id)},
                    ":prefix": {"S": keys.EXECUTION_SK_PREFIX},
                },
            },
            limit,
            now_epoch,
        )
    listings = [
        _query_newest(
            {
                **summary,
                "IndexName": "GSI1",
                "KeyConditionExpression": "GSI1PK = :pk",
                "ExpressionAttributeValues": {
                    ":pk": {"S": keys.executions_by_status_type_pk(flow_id, status, trigger_type)}
                },
            },
            limit,
            now_epoch,
        )
        for status, trigger_type in itertools.product(statuses, trigger_types)
    ]
    merged = heapq.merge(*listings, key=lambda item: item["id"], reverse=True)
    return list(itertools.islice(merged, limit))


def list_reason_summaries(
    flow_id: str, reason: str, trigger_types: tuple[str, ...], limit: int, now_epoch: int
) -> list[dict[str, Any]]:
    """The newest `limit` executions of the flow that ended for `reason`, with a trigger type in `trigger_types`:
    one query of their summaries per trigger type, each bounded by `limit`, merged newest first."""
    listings = [
        _query_newest(
            {
                "ProjectionExpression": SUMMARY_FIELDS,
                "ExpressionAttributeNames": {"#status": "status"},
                "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
                "ExpressionAttributeValues": {
                    ":pk": {"S": keys.flow_pk(flow_id)},
                    ":prefix": {"S": keys.execution_reason_prefix(reason, trigger_type)},
                },
            },
            limit,
            now_epoch,
        )
        for trigger_type in trigger_types
    ]
    return list(itertools.islice(heapq.merge(*listings, key=lambda item: item["id"], reverse=True), limit))


def oldest_ended_since(
    flow_id: str, status: str, first_id: str, limit: int, now_epoch: int
) -> list[dict[str, Any]]:
    """The oldest `limit` unexpired executions of the flow in `status` (an end status) whose id is at least
    `first_id` (ids are time-ordered: started at or after its time), not cancelled and not retried yet, whole items,
    oldest first: one GSI1 query per trigger type, merged. Filtered items still count toward DynamoDB's read, so a
    query reads on until `limit` are found or its partition ends."""
    listings = [
        query_items(
            {
                "IndexName": "GSI1",
                "KeyConditionExpression": "GSI1PK = :pk AND GSI1SK >= :first",
                "FilterExpression": (
                    "expiresAt > :now AND attribute_not_exists(retriedBy) AND attribute_not_exists(cancelled)"
                ),
                "ExpressionAttributeValues": {
                    ":pk": {"S": keys.executions_by_status_type_pk(flow_id, status, trigger_type)},
                    ":first": {"S": keys.execution_sk(first_id)},
                    ":now": {"N": str(now_epoch)},
                },
            },
            limit,
        )
        for trigger_type in TRIGGER_TYPES
    ]
    return list(itertools.islice(heapq.merge(*listings, key=lambda item: item["id"]), limit))


def marker_exists(execution_id: str, marker_sk: str) -> bool:
    """Whether the running marker is still there: every end of an execution deletes its current marker, so for a
    claimed run (whose marker only its own executor moves) False means someone else ended it."""
    response = client().get_item(
        TableName=table_name(), Key=_marker_key(execution_id, marker_sk), ProjectionExpression="PK"
    )
    return "Item" in response


def day_counters(flow_id: str, first_day: str, last_day: str) -> list[dict[str, Any]]:
    """The flow's per-day counter items from `first_day` to `last_day` (ISO dates), one query."""
    response = client().query(
        TableName=table_name(),
        KeyConditionExpression="PK = :pk AND SK BETWEEN :first AND :last",
        ExpressionAttributeValues={
            ":pk": {"S": keys.flow_pk(flow_id)},
            ":first": {"S": keys.flow_stats_day_sk(first_day)},
            ":last": {"S": keys.flow_stats_day_sk(last_day)},
        },
        ConsistentRead=True,
    )
    return [deserialize(item) for item in response.get("Items", [])]


def overdue_markers(shard: int, now_iso: str, limit: int) -> list[dict[str, Any]]:
    """Running markers of one shard whose deadline is at or before `now_iso`, earliest first."""
    response = client().query(
        TableName=table_name(),
        KeyConditionExpression="PK = :pk AND SK <= :now",
        ExpressionAttributeValues={":pk": {"S": keys.running_marker_pk(shard)}, ":now": {"S": f"{now_iso}~"}},
        Limit=limit,
    )
    return [deserialize(item) for item in response.get("Items", [])]


def delete_marker(marker: dict[str, Any]) -> None:
    client().delete_item(TableName=table_name(), Key=key(marker["PK"], marker["SK"]))


def delete_flow_executions(flow_id: str) -> None:
    """Every execution, day counter and log record of the flow. Running markers left behind are dropped by the
    sweeper when it finds their execution gone; remembered deliveries expire within a day."""
    delete_items(partition_keys(keys.flow_pk(flow_id)))
    delete_items(partition_keys(keys.flow_logs_pk(flow_id)))


OWNER_LIST_FIELDS = "id, flowId, flowVersion, #status, triggerType, startedAt, durationMs"


@dataclass(frozen=True)
class OwnerListing:
    """One page of a user's executions: `items`, newest first, and the id of the last execution the query looked
    at when more may follow (`next_below`: the next page starts below it), else None."""

    items: list[dict[str, Any]]
    next_below: str | None


def owner_executions_page(
    user_id: str,
    flow_id: str | None,
    lowest_id: str,
    highest_id: str,
    filters: dict[str, str],
    limit: int,
    read_limit: int,
    now_epoch: int,
) -> OwnerListing:
    """Up to `limit` executions with ids in [lowest_id, highest_id], newest first, whose fields equal `filters`
    (status, triggerType): ONE Query reading at most `read_limit` items. Of one flow: its own partition (the
    caller checked it owns the flow); else the owner's GSI2 partition (docs/executions.md)."""
    names = {"#status": "status"}
    values: dict[str, Any] = {
        ":low": keys.execution_sk(lowest_id),
        ":high": keys.execution_sk(highest_id),
        ":now": now_epoch,
    }
    conditions = ["expiresAt > :now"]
    for index, (field, value) in enumerate(sorted(filters.items())):
        names[f"#f{index}"] = field
        values[f":f{index}"] = value
        conditions.append(f"#f{index} = :f{index}")
    if flow_id is not None:
        values[":pk"] = keys.flow_pk(flow_id)
        where = {"KeyConditionExpression": "PK = :pk AND SK BETWEEN :low AND :high", "ConsistentRead": True}
    else:
        values[":pk"] = keys.executions_by_owner_pk(user_id)
        where = {"IndexName": "GSI2", "KeyConditionExpression": "GSI2PK = :pk AND GSI2SK BETWEEN :low AND :high"}
    response = client().query(
        TableName=table_name(),
        **where,
        FilterExpression=" AND ".join(conditions),
        ProjectionExpression=OWNER_LIST_FIELDS,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=serialize(values),
        ScanIndexForward=False,
        Limit=read_limit,
    )
    found = [deserialize(item) for item in response.get("Items", [])]
    if len(found) >= limit:
        return OwnerListing(found[:limit], found[limit - 1]["id"])
    last = response.get("LastEvaluatedKey")
    if last is None:
        return OwnerListing(found, None)
    last_sk = last["SK" if flow_id is not None else "GSI2SK"]["S"]
    return OwnerListing(found, last_sk.removeprefix(keys.EXECUTION_SK_PREFIX))


def delete_ended(execution: dict[str, Any]) -> bool:
    """Delete an ended execution (and its summary beside it when it ended for a reason), leaving every counter as
    it is; False when it is gone (an ended execution never runs again)."""
    flow_id, execution_id = execution["flowId"], execution["id"]
    actions: list[dict[str, Any]] = [
        {
            "Delete": {
                "TableName": table_name(),
                "Key": execution_key(flow_id, execution_id),
                "ConditionExpression": "attribute_exists(PK) AND #status <> :running",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":running": {"S": "running"}},
            }
        }
    ]
    if execution.get("reason"):
        summary_sk = keys.execution_reason_sk(execution["reason"], execution["triggerType"], execution_id)
        actions.append({"Delete": {"TableName": table_name(), "Key": key(keys.flow_pk(flow_id), summary_sk)}})
    return _write_unless_first_fails(actions)
