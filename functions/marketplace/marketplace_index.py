"""The marketplace's index, kept on every write so that browse and search never read the listings wholesale
(docs/marketplace.md): browse terms (type × category × tag, each possibly open) each with a partition per sort order,
search words each with a partition of postings, and a counter per term and word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from bloxserver.dal import marketplace as store

SORTS = ("downloads", "rating", "newest")
ANY = "*"
# Words longer than this are cut to it (a key stays small; such a "word" is a hash or a URL, not a search term).
MAX_WORD_CHARS = 48
# A query's first words only: each costs one counter read and a lookup per candidate.
MAX_QUERY_WORDS = 8
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Case and accents folded: "Écrire" and "ecrire" are the same word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def words(text: str) -> list[str]:
    """The whole words of `text` (runs of letters and digits), folded, in order, without repeats."""
    return list(dict.fromkeys(word[:MAX_WORD_CHARS] for word in _WORD.findall(fold(text))))


def listing_words(listing: dict[str, Any]) -> set[str]:
    return set(words(" ".join([listing["name"], listing["description"], *listing["tags"]])))


def browse_terms(listing: dict[str, Any]) -> set[str]:
    """The browse partitions a listing belongs to: every combination of its type, its category and one of its tags,
    each of them possibly left open (4 × (1 + tags)), so that any browse filter reads one partition."""
    return {
        browse_term(kind, category, tag)
        for kind in (None, listing["type"])
        for category in (None, listing["category"])
        for tag in (None, *listing["tags"])
    }


def browse_term(kind: str | None, category: str | None, tag: str | None) -> str:
    term = f"type={kind or ANY}&category={category or ANY}"
    return f"{term}&tag={tag}" if tag is not None else term


def word_term(word: str) -> str:
    return f"word={word}"


def rating(listing: dict[str, Any]) -> float | None:
    """The mean of the listing's ratings, to two decimals; None when unrated."""
    count = int(listing.get("ratingCount") or 0)
    return round(int(listing.get("ratingSum") or 0) / count, 2) if count else None


def sort_value(listing: dict[str, Any], sort: str) -> tuple[str, int]:
    """(the listing's key in `sort` order, highest first; the version that orders its updates)."""
    if sort == "downloads":
        downloads = int(listing.get("downloads") or 0)
        return f"{downloads:012d}", downloads
    if sort == "rating":
        count = int(listing.get("ratingCount") or 0)
        mean_milli = round(int(listing.get("ratingSum") or 0) * 1000 / count) if count else 0
        return f"{mean_milli:04d}#{count:010d}", int(listing.get("ratingWrites") or 0)
    return listing["createdAt"], 0


def _facets(listing: dict[str, Any]) -> dict[str, Any]:
    """What a search narrows word postings by without reading the listing."""
    return {"type": listing["type"], "category": listing["category"], "tags": listing["tags"],
            "createdAt": listing["createdAt"]}


def index_changes(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """What brings the index from listing `before` (None: not indexed) to listing `after` (None: hidden): (postings to
    put: of the terms and words it joined, and every word posting when the facets they carry changed; keys of
    postings to delete: of those it left; counter deltas by term)."""
    old_terms = browse_terms(before) if before else set()
    new_terms = browse_terms(after) if after else set()
    old_words = listing_words(before) if before else set()
    new_words = listing_words(after) if after else set()
    facets_changed = bool(before and after and _facets(before) != _facets(after))
    puts: list[dict[str, Any]] = []
    deletes: list[dict[str, Any]] = []
    if after:
        listing_id = after["id"]
        for sort in SORTS:
            value, version = sort_value(after, sort)
            puts += [store.posting_item(sort, term, listing_id, value, version) for term in new_terms - old_terms]
        put_words = new_words if facets_changed else new_words - old_words
        puts += [store.word_posting_item(word, listing_id, _facets(after)) for word in sorted(put_words)]
    if before:
        listing_id = before["id"]
        deletes += [store.posting_key(sort, term, listing_id) for sort in SORTS for term in sorted(old_terms - new_terms)]
        deletes += [store.word_posting_key(word, listing_id) for word in sorted(old_words - new_words)]
    deltas = {term: 1 for term in new_terms - old_terms} | {term: -1 for term in old_terms - new_terms}
    deltas |= {word_term(word): 1 for word in new_words - old_words}
    deltas |= {word_term(word): -1 for word in old_words - new_words}
    return puts, deletes, deltas


def reindex(before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    """Bring the index from listing `before` to listing `after` (index_changes): postings put and deleted, then
    each changed counter moved (one write per term)."""
    puts, deletes, deltas = index_changes(before, after)
    store.put_items(puts)
    store.delete_index_items(deletes)
    store.add_to_counts(deltas)


def resort(listing: dict[str, Any], sort: str) -> None:
    """Move a live listing to its place in every `sort` partition it is in (after a download or a rating)."""
    value, version = sort_value(listing, sort)
    store.set_sort_value(sort, browse_terms(listing), listing["id"], value, version)


def _order(listings: Iterable[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """Highest first, as a browse partition's GSI1SK (its sort value, then its id) orders them descending."""
    return sorted(listings, key=lambda listing: (sort_value(listing, sort)[0], listing["id"]), reverse=True)


def browse(kind: str | None, category: str | None, tag: str | None, sort: str, read_limit: int) -> tuple[list[str], int]:
    """(ids of the first `read_limit` matching listings in `sort` order, how many match): one partition's counter
    and the head of its sort order."""
    term = browse_term(kind, category, tag)
    total = store.counts([term])[term]
    return (store.browse_ids(sort, term, read_limit) if total else []), total


def search(
    query_words: list[str], kind: str | None, category: str | None, tag: str | None, sort: str
) -> tuple[list[str], int, dict[str, dict[str, Any]]]:
    """(ids of every listing holding all `query_words` and matching the filters, in `sort` order; how many; the
    summaries read to order them, by id). Reads the postings of the rarest query word only, then one posting of
    each other word per candidate."""
    counted = store.counts(word_term(word) for word in query_words)
    if not all(counted.values()):
        return [], 0, {}
    rarest = min(query_words, key=lambda word: counted[word_term(word)])
    candidates = [
        posting for posting in store.word_postings(rarest)
        if (kind is None or posting["type"] == kind)
        and (category is None or posting["category"] == category)
        and (tag is None or tag in posting["tags"])
    ]
    ids = [posting["SK"] for posting in candidates]
    others = [word for word in query_words if word != rarest]
    if others and ids:
        held = store.word_postings_held(others, ids)
        ids = [listing_id for listing_id in ids if all((word, listing_id) in held for word in others)]
    if sort == "newest":
        created = {posting["SK"]: posting["createdAt"] for posting in candidates}
        ordered = sorted(ids, key=lambda listing_id: (created[listing_id], listing_id), reverse=True)
        return ordered, len(ordered), {}
    summaries = store.get_summaries(ids)
    live = [summary for summary in summaries.values() if not summary.get("deleted")]
    return [listing["id"] for listing in _order(live, sort)], len(live), summaries
