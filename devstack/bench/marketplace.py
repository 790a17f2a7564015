"""Marketplace: DynamoDB reads per browse page and per search page as the table grows, and writes per publish.

The marketplace function's handler serves each request in this process against moto in the same process (only
counts are reported, no times: the emulator's speed does not matter, and an in-process one seeds 1,000 listings
in minutes rather than tens of minutes). Listings are seeded as a publish writes them (their items and index, docs/marketplace.md) with 100 and then 1,000
listings in the table, and each request is measured at both sizes: DynamoDB requests, and items read (what
DynamoDB charges reads for: every item a Query reads, filtered out or not, and every item a GetItem or
BatchGetItem returns). A page is independent of the table's size when both columns agree.

Search costs follow the query's rarest word (its postings are read), not the table: "a rare word" is held by 20
listings whatever the table's size; "a common word" by about 2% of them, so its cost grows with the table, as
its number of results does.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient

from devstack import embedded_aws, resources
from devstack.events import LambdaContext, http_api_event, run_handler
from devstack.server import forget_cached_clients

SIZES = (100, 1000)
RARE_WORD = "zephyr"
RARE_HOLDERS = 20
VOCABULARY = [f"term{index}" for index in range(500)]
CATEGORIES = ("productivity", "ai", "data", "integrations", "developer-tools", "other")
TAGS = ("email", "llm", "reports", "crm", "slack", "etl", "webhooks", "scraping")
REQUESTS = {
    "browse, page 1 (downloads)": {},
    "browse, page 1, newest": {"sort": "newest"},
    "browse, category": {"category": "data"},
    "browse, tag + type": {"tag": "email", "type": "flow"},
    "browse, tag + category + type": {"tag": "email", "category": "data", "type": "flow"},
    "browse, page 5": {"page": "5"},
    "search, a rare word (20 results)": {"q": RARE_WORD},
    "search, a rare word, newest": {"q": RARE_WORD, "sort": "newest"},
    "search, a rare and a common word": {"q": f"{RARE_WORD} term7"},
    "search, a common word (~2% of listings)": {"q": "term7"},
}

_lock = threading.Lock()
_unpatched = BaseClient._make_api_call


@contextmanager
def dynamodb_reads() -> Iterator[Counter]:
    """Counter of DynamoDB `requests`, `items read` and `items written` by this process inside the block."""
    counter: Counter = Counter()

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        response = _unpatched(self, operation, params)
        if self.meta.service_model.service_name == "dynamodb":
            with _lock:
                counter["requests"] += 1
                if operation == "Query":
                    counter["items read"] += response.get("ScannedCount", 0)
                elif operation == "GetItem":
                    counter["items read"] += 1 if response.get("Item") else 0
                elif operation == "BatchGetItem":
                    counter["items read"] += sum(len(items) for items in response.get("Responses", {}).values())
                elif operation == "BatchWriteItem":
                    counter["items written"] += sum(len(requests) for requests in params["RequestItems"].values())
                elif operation == "TransactWriteItems":
                    counter["items written"] += len(params["TransactItems"])
                elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
                    counter["items written"] += 1
        return response

    BaseClient._make_api_call = counting  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        BaseClient._make_api_call = _unpatched  # type: ignore[method-assign]


def _listing(index: int, rng: random.Random) -> dict[str, Any]:
    from bloxserver import clock

    words = rng.sample(VOCABULARY, 10) + ([RARE_WORD] if index < RARE_HOLDERS else [])
    now = clock.now_iso()
    return {
        "id": str(uuid.uuid4()),
        "authorId": str(uuid.uuid4()),
        "authorName": f"author{index}",
        "type": "tool" if index % 4 == 0 else "flow",
        "name": f"Listing {index} {words[0]}",
        "description": " ".join(words),
        "category": CATEGORIES[index % len(CATEGORIES)],
        "tags": rng.sample(TAGS, 2),
        "downloads": rng.randrange(10_000),
        "ratingSum": 0,
        "ratingCount": 0,
        "createdAt": now,
        "updatedAt": now,
    }


def _seed(first: int, last: int, rng: random.Random, counts: Counter) -> None:
    """Listings `first` to `last`, each with the items and index postings a publish writes (index_changes); the
    counters, which a publish moves one write per term, are written once at the end, from `counts` (kept across
    calls), so that 1,000 listings seed in a minute."""
    import marketplace_index

    from bloxserver import keys
    from bloxserver.dal import marketplace

    content = {"contentJson": json.dumps({"type": "flow", "organismYaml": "x", "canvasState": {}})}
    postings: list[dict[str, Any]] = []
    for index in range(first, last):
        listing = _listing(index, rng)
        marketplace.insert_listing(listing, content)
        puts, _, deltas = marketplace_index.index_changes(None, listing)
        postings += puts
        counts.update(deltas)
    counters = [{"PK": keys.term_count_pk(term), "SK": keys.COUNT_SK, "n": n} for term, n in counts.items()]
    marketplace.put_items(postings + counters)


def measure() -> tuple[dict[str, dict[int, Counter]], Counter]:
    """(reads per request by table size, writes of one publish through the API)."""
    from moto import mock_aws

    os.environ.update({**embedded_aws.FAKE_CREDENTIALS, **resources.environment(), "POWERTOOLS_LOG_LEVEL": "WARNING"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    embedded_aws.make_moto_dynamodb_faithful()
    with mock_aws():
        forget_cached_clients()
        resources.create_all()
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "functions", "marketplace"))
        import marketplace_handler

        rng = random.Random(13)
        results: dict[str, dict[int, Counter]] = {name: {} for name in REQUESTS}
        seeded, counts = 0, Counter()
        for size in SIZES:
            _seed(seeded, size, rng, counts)
            seeded = size
            for name, query in REQUESTS.items():
                event = http_api_event("GET", "/api/v1/marketplace", query={"page_size": "20", **query})
                with dynamodb_reads() as counted:
                    reply = run_handler(marketplace_handler.handler, event, LambdaContext("bench"))
                if reply["statusCode"] != 200:
                    raise RuntimeError(f"{name}: {reply['statusCode']} {reply.get('body')}")
                results[name][size] = counted
        publish = {
            "type": "flow", "name": "Weekly report mailer", "category": "data", "tags": ["reports", "email"],
            "description": " ".join(rng.sample(VOCABULARY, 30)),
            "content": {"type": "flow", "canvasState": {"nodes": [], "edges": [], "viewport": {"x": 0, "y": 0}},
                        "organismYaml": "listeners:\n  - name: done\n    description: d\n    handler: output\n"},
        }
        claims = {"sub": "bench_publisher", "email": "publisher@example.com", "tier": "pro"}
        with dynamodb_reads() as written:
            reply = run_handler(marketplace_handler.handler,
                                http_api_event("POST", "/api/v1/marketplace", body=publish, claims=claims),
                                LambdaContext("bench"))
        if reply["statusCode"] != 201:
            raise RuntimeError(f"publish: {reply['statusCode']} {reply.get('body')}")
        return results, written


def report(measured: tuple[dict[str, dict[int, Counter]], Counter]) -> str:
    results, publish = measured
    small, large = SIZES
    lines = [
        f"| request (page_size 20) | {small} listings: requests / items read | {large:,} listings: requests / items "
        "read |",
        "|---|---:|---:|",
    ]
    for name, by_size in results.items():
        cells = [f"{by_size[size]['requests']} / {by_size[size]['items read']}" for size in SIZES]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines.append(
        f"\nOne publish (a template, a 3-word name, 2 tags, a 30-word description): {publish['requests']} "
        f"DynamoDB requests, {publish['items written']} items written, {publish['items read']} items read."
    )
    return "\n".join(lines)
