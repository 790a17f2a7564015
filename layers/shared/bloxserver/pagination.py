"""Offset pagination (the contract's `page`/`pageSize`/`total`) over DynamoDB queries.

DynamoDB has no offsets: a page is read by querying newest-first up to `page * page_size` items and keeping the
last `page_size`. Page 1 therefore costs one bounded query whatever the collection's size; `total` comes from a
counter kept beside the collection, never from a recount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

from fastapi import Query

from bloxserver.contract import PaginatedResponse
from bloxserver.errors import ValidationFailed

T = TypeVar("T")

MAX_PAGE_SIZE = 100
# Offset paging reads every item before the page: bound how deep a page may be (a cursor API would lift this).
MAX_ITEMS_BEFORE_PAGE = 10_000


@dataclass(frozen=True)
class PageRequest:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    @property
    def read_limit(self) -> int:
        """How many items, newest first, a query must return to cover this page."""
        return self.offset + self.page_size


def page_query(default_size: int):
    """A FastAPI dependency reading `page` (≥ 1) and `page_size` (1–100) from the query string."""

    # async: FastAPI runs a sync dependency in a worker thread, whose first use imports anyio's backend (cold start)
    async def dependency(
        page: int = Query(1, ge=1),
        page_size: int = Query(default_size, ge=1, le=MAX_PAGE_SIZE),
    ) -> PageRequest:
        request = PageRequest(page=page, page_size=page_size)
        if request.offset > MAX_ITEMS_BEFORE_PAGE:
            raise ValidationFailed(
                "Request validation failed",
                {"query.page": f"(page − 1) × page_size may be at most {MAX_ITEMS_BEFORE_PAGE}: the items before the page"},
            )
        return request

    return dependency


def to_page(newest_first: list[T], total: int, request: PageRequest) -> PaginatedResponse[T]:
    """Cut this page out of the first `read_limit` items of a newest-first listing."""
    items = newest_first[request.offset : request.read_limit]
    return PaginatedResponse[T](
        items=items,
        total=total,
        page=request.page,
        page_size=request.page_size,
        has_more=request.offset + len(items) < total,
    )


def counted_page(total: int, request: PageRequest, read_newest_first: Callable[[int], list[T]]) -> PaginatedResponse[T]:
    """This page of a collection whose `total` a counter keeps: `read_newest_first(read_limit)` queries it only
    when it is not empty."""
    return to_page(read_newest_first(request.read_limit) if total else [], total, request)
