"""Marketplace items (docs/marketplace.md): listings (a small summary item and a content item), the distinct users
who downloaded or rated each, and the index partitions browse and search read instead of the listings:

- browse postings: per (sort order, browse term) one item per matching listing, its sort key in GSI1SK;
- word postings: per search word one item per listing holding it, with what a search filters on;
- counters: per browse term and per word, the number of live listings matching it (a page's exact `total`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal.table import (
    batch_get,
    cancellation_codes,
    client,
    delete_items,
    deserialize,
    error_code,
    get_item,
    key,
    query_items,
    serialize,
    table_name,
    transact_write,
)

# BatchWriteItem's limit per request.
BATCH_WRITE_SIZE = 25
SUMMARY_FIELDS = ("id", "authorName", "#type", "#name", "description", "category", "downloads", "ratingSum",
                  "ratingCount")


class ListingConditionFailed(Exception):
    """A conditional write on a listing failed; `current` is its summary item as it was (None: no such listing)."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.current = current


def listing_key(listing_id: UUID | str) -> dict[str, Any]:
    return key(keys.listing_pk(listing_id), keys.LISTING_SK)


def content_key(listing_id: UUID | str) -> dict[str, Any]:
    return key(keys.listing_pk(listing_id), keys.LISTING_CONTENT_SK)


def insert_listing(listing: dict[str, Any], content: dict[str, Any]) -> None:
    """The listing's summary and content items, in one transaction (a new id: absent before)."""
    listing_id = listing["id"]
    transact_write(
        [
            {"Put": {"TableName": table_name(), "Item": serialize(_summary_item(listing)),
                     "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Put": {"TableName": table_name(), "Item": serialize(_content_item(listing_id, content))}},
        ]
    )


def _summary_item(listing: dict[str, Any]) -> dict[str, Any]:
    return {"PK": keys.listing_pk(listing["id"]), "SK": keys.LISTING_SK, "entity": "listing", **listing}


def _content_item(listing_id: UUID | str, content: dict[str, Any]) -> dict[str, Any]:
    return {"PK": keys.listing_pk(listing_id), "SK": keys.LISTING_CONTENT_SK, "entity": "listingContent", **content}


def _without_keys(item: dict[str, Any]) -> dict[str, Any]:
    return {field: value for field, value in item.items() if field not in ("PK", "SK", "entity")}


def get_listing(listing_id: UUID | str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(summary item, content item) of a listing, deleted ones included, consistently read; None when absent."""
    items = {item["SK"]: _without_keys(item) for item in batch_get([listing_key(listing_id), content_key(listing_id)],
                                                                   consistent=True)}
    if keys.LISTING_SK not in items:
        return None
    return items[keys.LISTING_SK], items.get(keys.LISTING_CONTENT_SK, {})


def get_listing_summary(listing_id: UUID | str) -> dict[str, Any] | None:
    item = get_item(listing_key(listing_id))
    return _without_keys(item) if item else None


def get_summaries(listing_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Summary items of these listings (deleted ones included), by id, eventually consistent: a page's listings."""
    found = batch_get(
        [listing_key(listing_id) for listing_id in dict.fromkeys(listing_ids)],
        projection=", ".join((*SUMMARY_FIELDS, "deleted", "createdAt", "ratingWrites")),
        names={"#type": "type", "#name": "name"},
    )
    return {item["id"]: item for item in found}


def update_listing(
    listing_id: UUID | str, changes: dict[str, Any], content: dict[str, Any] | None, author_id: str
) -> dict[str, Any]:
    """Apply `changes` to the summary (and replace the content item when given), only for a live listing of
    `author_id`: the new summary. Raises ListingConditionFailed with the current summary otherwise."""
    names: dict[str, str] = {"#author": "authorId", "#deleted": "deleted"}
    values: dict[str, Any] = {":author": author_id}
    sets = []
    for index, (field, value) in enumerate(changes.items()):
        names[f"#f{index}"] = field
        values[f":f{index}"] = value
        sets.append(f"#f{index} = :f{index}")
    update = {
        "TableName": table_name(),
        "Key": listing_key(listing_id),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "attribute_exists(PK) AND #author = :author AND attribute_not_exists(#deleted)",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": serialize(values),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    actions: list[dict[str, Any]] = [{"Update": update}]
    if content is not None:
        actions.append({"Put": {"TableName": table_name(), "Item": serialize(_content_item(listing_id, content))}})
    try:
        transact_write(actions)
    except ClientError as exc:
        if error_code(exc) == "TransactionCanceledException" and cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
            old = exc.response.get("CancellationReasons", [{}])[0].get("Item")
            raise ListingConditionFailed(_without_keys(deserialize(old)) if old else None) from exc
        raise
    current = get_listing_summary(listing_id)
    if current is None:
        raise ListingConditionFailed(None)
    return current


def mark_deleted(listing_id: UUID | str, author_id: str, deleted_at: str) -> dict[str, Any]:
    """Hide a live listing of `author_id` (its items stay: installs run its copies of the bytes): the summary as it
    was. Raises ListingConditionFailed with the current summary otherwise."""
    try:
        response = client().update_item(
            TableName=table_name(),
            Key=listing_key(listing_id),
            UpdateExpression="SET #deleted = :at",
            ConditionExpression="attribute_exists(PK) AND #author = :author AND attribute_not_exists(#deleted)",
            ExpressionAttributeNames={"#author": "authorId", "#deleted": "deleted"},
            ExpressionAttributeValues=serialize({":author": author_id, ":at": deleted_at}),
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            old = exc.response.get("Item")
            raise ListingConditionFailed(_without_keys(deserialize(old)) if old else None) from exc
        raise
    return _without_keys(deserialize(response["Attributes"]))


# Downloads: distinct users, each counted by the conditional insert of their download item.


def download_actions(listing_id: UUID | str, user_id: UUID | str, at: str) -> list[dict[str, Any]]:
    """Transaction actions counting `user_id` as a download of a live listing, written last in their transaction:
    their download item (it fails when they were counted already) and `downloads + 1` (it fails when the listing
    is gone)."""
    return [
        {
            "Put": {
                "TableName": table_name(),
                "Item": serialize({"PK": keys.listing_pk(listing_id), "SK": keys.listing_download_sk(user_id),
                                   "entity": "listingDownload", "at": at}),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        },
        {
            "Update": {
                "TableName": table_name(),
                "Key": listing_key(listing_id),
                "UpdateExpression": "ADD downloads :one",
                "ConditionExpression": "attribute_exists(PK) AND attribute_not_exists(#deleted)",
                "ExpressionAttributeNames": {"#deleted": "deleted"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
    ]


def downloaded(listing_id: UUID | str, user_id: UUID | str) -> bool:
    return get_item(key(keys.listing_pk(listing_id), keys.listing_download_sk(user_id))) is not None


def download_refused(exc: ClientError) -> str | None:
    """Why a cancelled transaction ending with download_actions failed on them: "counted" (the user was counted
    already, by a concurrent use of theirs), "gone" (the listing was deleted meanwhile), else None."""
    codes = cancellation_codes(exc)[-2:]
    if codes[:1] == ["ConditionalCheckFailed"]:
        return "counted"
    if codes[1:] == ["ConditionalCheckFailed"]:
        return "gone"
    return None


# Ratings: one item per user; the summary keeps their sum and count (the mean is sum / count).


def get_rating(listing_id: UUID | str, user_id: UUID | str) -> int | None:
    item = get_item(key(keys.listing_pk(listing_id), keys.listing_rating_sk(user_id)))
    return int(item["stars"]) if item else None


def rate(listing_id: UUID | str, user_id: UUID | str, stars: int, previous: int | None, at: str) -> bool:
    """Record `user_id`'s rating of a live listing, replacing `previous` (their rating as read); False when it
    changed meanwhile (read again and retry). Raises ListingConditionFailed when the listing is gone."""
    rating_item = {"PK": keys.listing_pk(listing_id), "SK": keys.listing_rating_sk(user_id),
                   "entity": "listingRating", "stars": stars, "at": at}
    if previous is None:
        rating_condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(PK)"}
    else:
        rating_condition = {"ConditionExpression": "stars = :previous",
                            "ExpressionAttributeValues": {":previous": {"N": str(previous)}}}
    try:
        transact_write(
            [
                {
                    "Update": {
                        "TableName": table_name(),
                        "Key": listing_key(listing_id),
                        # ratingWrites orders the index updates that follow (docs/marketplace.md).
                        "UpdateExpression": "ADD ratingSum :delta, ratingCount :new, ratingWrites :one",
                        "ConditionExpression": "attribute_exists(PK) AND attribute_not_exists(#deleted)",
                        "ExpressionAttributeNames": {"#deleted": "deleted"},
                        "ExpressionAttributeValues": serialize(
                            {":delta": stars - (previous or 0), ":new": 0 if previous else 1, ":one": 1}
                        ),
                    }
                },
                {"Put": {"TableName": table_name(), "Item": serialize(rating_item), **rating_condition}},
            ]
        )
    except ClientError as exc:
        if error_code(exc) != "TransactionCanceledException":
            raise
        codes = cancellation_codes(exc)
        if codes[:1] == ["ConditionalCheckFailed"]:
            raise ListingConditionFailed(None) from exc
        if "ConditionalCheckFailed" in codes:
            return False
        raise
    return True


# The index partitions.


def posting_item(sort: str, term: str, listing_id: str, sort_value: str, version: int) -> dict[str, Any]:
    """A listing in one browse partition: `version` orders the sort key's updates (a later value never loses to an
    earlier one)."""
    pk = keys.browse_pk(sort, term)
    return {"PK": pk, "SK": listing_id, "GSI1PK": pk, "GSI1SK": keys.browse_sk(sort_value, listing_id),
            "entity": "browsePosting", "v": version}


def posting_key(sort: str, term: str, listing_id: str) -> dict[str, Any]:
    return key(keys.browse_pk(sort, term), listing_id)


def word_posting_item(word: str, listing_id: str, facets: dict[str, Any]) -> dict[str, Any]:
    return {"PK": keys.word_pk(word), "SK": listing_id, "entity": "wordPosting", **facets}


def word_posting_key(word: str, listing_id: str) -> dict[str, Any]:
    return key(keys.word_pk(word), listing_id)


def put_items(items: list[dict[str, Any]]) -> None:
    """Put index items in batches of 25, retrying what DynamoDB leaves unprocessed."""
    for start in range(0, len(items), BATCH_WRITE_SIZE):
        pending = {table_name(): [{"PutRequest": {"Item": serialize(item)}} for item in items[start : start + BATCH_WRITE_SIZE]]}
        while pending:
            response = client().batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}


def delete_index_items(item_keys: list[dict[str, Any]]) -> None:
    delete_items(item_keys)


def add_to_counts(deltas: dict[str, int]) -> None:
    """Add each delta to its term's counter (one write per term)."""
    for term, delta in sorted(deltas.items()):
        if delta:
            client().update_item(
                TableName=table_name(),
                Key=key(keys.term_count_pk(term), keys.COUNT_SK),
                UpdateExpression="ADD n :delta",
                ExpressionAttributeValues={":delta": {"N": str(delta)}},
            )


def counts(terms: Iterable[str]) -> dict[str, int]:
    """The counters of these terms (0 for a term no listing ever matched)."""
    unique = list(dict.fromkeys(terms))
    by_pk = {keys.term_count_pk(term): term for term in unique}
    found = {term: 0 for term in unique}
    for item in batch_get([key(pk, keys.COUNT_SK) for pk in by_pk]):
        found[by_pk[item["PK"]]] = max(int(item.get("n", 0)), 0)
    return found


def set_sort_value(sort: str, terms: Iterable[str], listing_id: str, sort_value: str, version: int) -> None:
    """Move the listing within each term's `sort` partition, unless a later version is there already (or the posting
    is gone: the listing left that term)."""
    for term in sorted(set(terms)):
        try:
            client().update_item(
                TableName=table_name(),
                Key=posting_key(sort, term, listing_id),
                UpdateExpression="SET GSI1SK = :sk, v = :v",
                ConditionExpression="attribute_exists(PK) AND v < :v",
                ExpressionAttributeValues=serialize({":sk": keys.browse_sk(sort_value, listing_id), ":v": version}),
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise


def browse_ids(sort: str, term: str, limit: int) -> list[str]:
    """Listing ids of one browse partition in `sort` order (highest first), up to `limit`."""
    request: dict[str, Any] = {
        "IndexName": "GSI1",
        "KeyConditionExpression": "GSI1PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": keys.browse_pk(sort, term)}},
        "ProjectionExpression": "SK",
        "ScanIndexForward": False,
    }
    return [item["SK"] for item in query_items(request, limit)]


def word_postings(word: str) -> list[dict[str, Any]]:
    """Every posting of one search word (the listings holding it, with their facets)."""
    return query_items(
        {
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.word_pk(word)}},
        }
    )


def word_postings_held(words: list[str], listing_ids: list[str]) -> set[tuple[str, str]]:
    """Which of the (word, listing) postings exist, for every word and listing given (keys only read)."""
    found = batch_get(
        [word_posting_key(word, listing_id) for word in words for listing_id in listing_ids], projection="PK, SK"
    )
    return {(item["PK"].removeprefix(keys.word_pk("")), item["SK"]) for item in found}
