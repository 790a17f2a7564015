"""The marketplace index's pure parts: which words a text holds, and which browse partitions a listing is in."""

from __future__ import annotations

import marketplace_index as index


def test_words_are_whole_runs_of_letters_and_digits_case_and_accent_folded():
    assert index.words("Crème BRÛLÉE: e-mail 2fa, naïve_café!") == ["creme", "brulee", "e", "mail", "2fa", "naive", "cafe"]


def test_a_word_repeated_is_listed_once_and_a_long_one_is_cut():
    assert index.words("Data data DATA") == ["data"]
    assert index.words("x" * 100) == ["x" * index.MAX_WORD_CHARS]


def test_a_listing_is_in_every_type_category_and_tag_combination_with_each_left_open():
    listing = {"type": "tool", "category": "ai", "tags": ["llm"]}

    assert index.browse_terms(listing) == {
        "type=*&category=*", "type=tool&category=*", "type=*&category=ai", "type=tool&category=ai",
        "type=*&category=*&tag=llm", "type=tool&category=*&tag=llm", "type=*&category=ai&tag=llm",
        "type=tool&category=ai&tag=llm",
    }


def test_sort_values_order_as_strings_as_their_numbers_do():
    def downloads(n: int) -> str:
        return index.sort_value({"downloads": n}, "downloads")[0]

    def rated(total: int, count: int) -> str:
        return index.sort_value({"ratingSum": total, "ratingCount": count}, "rating")[0]

    assert downloads(9) < downloads(10) < downloads(1_000_000)
    assert rated(0, 0) < rated(2, 1) < rated(9, 2) < rated(5, 1) < rated(10, 2)
