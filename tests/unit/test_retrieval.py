"""Pure retrieval pieces: token chunking, attribute filters, rank fusion and the FTS5 query builder."""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from assistd.retrieval import ranking
from assistd.retrieval.chunking import SEGMENT_CHARS, Chunk, TokenChunker
from assistd.retrieval.filters import matches
from assistd.retrieval.index_sqlite import MAX_QUERY_TERMS, affordable_terms, match_expression
from assistd.retrieval.ranking import K, fuse
from assistd.schemas.vector_stores import ComparisonFilter, CompoundFilter

PROSE = " ".join(
    f"Paragraph {n}: the river Thames flows past old stone bridges, and gardeners plant tulips in spring."
    for n in range(40)
)


# --- chunking -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chunker() -> Iterator[TokenChunker]:
    yield TokenChunker()


def span_index(spans: list[tuple[int, int]], chunk: Chunk) -> tuple[int, int]:
    """Indexes of a chunk's first and last token among the document's token spans."""
    starts = [i for i, (start, _) in enumerate(spans) if start == chunk.start]
    ends = [i for i, (_, end) in enumerate(spans) if end == chunk.end]
    assert len(starts) == 1 and len(ends) == 1, chunk
    return starts[0], ends[0]


def without_spaces(text: str) -> str:
    return "".join(text.split())


def test_token_spans_are_ordered_nonempty_and_cover_every_non_space_character(chunker: TokenChunker) -> None:
    text = "Hello, world! naïve café 12345"
    spans = chunker.token_spans(text)
    assert spans[:4] == [(0, 5), (5, 6), (7, 12), (12, 13)]
    assert all(start < end for start, end in spans)
    assert all(a[1] <= b[0] for a, b in pairwise(spans))
    assert "".join(text[start:end] for start, end in spans) == without_spaces(text)


def test_chunk_text_is_the_exact_slice_of_the_document(chunker: TokenChunker) -> None:
    chunks = chunker.chunks(PROSE, max_tokens=50, overlap=10)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text == PROSE[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip() and chunk.text


def test_chunks_have_at_most_max_tokens_and_count_them_truthfully(chunker: TokenChunker) -> None:
    spans = chunker.token_spans(PROSE)
    chunks = chunker.chunks(PROSE, max_tokens=50, overlap=10)
    for chunk in chunks:
        first, last = span_index(spans, chunk)
        assert chunk.tokens == last - first + 1
        assert chunk.tokens <= 50
    assert all(chunk.tokens == 50 for chunk in chunks[:-1])


@pytest.mark.parametrize(("max_tokens", "overlap"), [(50, 10), (40, 0), (30, 29), (7, 3)])
def test_consecutive_chunks_overlap_by_the_requested_number_of_tokens(
    chunker: TokenChunker, max_tokens: int, overlap: int
) -> None:
    spans = chunker.token_spans(PROSE)
    chunks = chunker.chunks(PROSE, max_tokens=max_tokens, overlap=overlap)
    step = max_tokens - overlap
    assert len(chunks) == math.ceil((len(spans) - max_tokens) / step) + 1
    previous_first, previous_last = span_index(spans, chunks[0])
    assert previous_first == 0
    for chunk in chunks[1:]:
        first, last = span_index(spans, chunk)
        assert first == previous_first + step
        assert previous_last - first + 1 == min(overlap, previous_last - previous_first + 1)
        previous_first, previous_last = first, last


def test_no_overlap_gives_disjoint_consecutive_chunks(chunker: TokenChunker) -> None:
    chunks = chunker.chunks(PROSE, max_tokens=25, overlap=0)
    assert all(a.end <= b.start for a, b in pairwise(chunks))
    assert sum(chunk.tokens for chunk in chunks) == len(chunker.token_spans(PROSE))


def test_last_chunk_reaches_the_end_and_first_starts_at_the_first_token(chunker: TokenChunker) -> None:
    text = "  \n" + PROSE + "  \n"
    chunks = chunker.chunks(text, max_tokens=64, overlap=16)
    assert chunks[0].start == 3
    assert chunks[-1].end == len(text) - 3
    assert chunks[-1].text.endswith("tulips in spring.")


def test_text_shorter_than_max_is_one_chunk_of_the_stripped_span(chunker: TokenChunker) -> None:
    text = "  \n Refunds are issued within 30 days.\n\n "
    chunks = chunker.chunks(text, max_tokens=800, overlap=400)
    stripped = text.strip()
    start = text.index(stripped)
    tokens = len(chunker.token_spans(text))
    assert tokens == 8  # "refunds" is two WordPiece tokens
    assert chunks == [Chunk(text=stripped, start=start, end=start + len(stripped), tokens=tokens)]


def test_blank_text_gives_no_chunks(chunker: TokenChunker) -> None:
    assert chunker.chunks("", max_tokens=10, overlap=2) == []
    assert chunker.chunks(" \n\t ", max_tokens=10, overlap=2) == []


def test_text_of_exactly_max_tokens_is_one_chunk(chunker: TokenChunker) -> None:
    text = "one two three four five six"
    assert len(chunker.token_spans(text)) == 6
    assert chunker.chunks(text, max_tokens=6, overlap=5) == [Chunk(text=text, start=0, end=len(text), tokens=6)]


@pytest.mark.parametrize(("max_tokens", "overlap"), [(10, 10), (10, 11), (10, -1), (0, 0)])
def test_invalid_overlap_raises_value_error(chunker: TokenChunker, max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunker.chunks(PROSE, max_tokens=max_tokens, overlap=overlap)


@pytest.fixture(scope="module")
def long_text() -> str:
    """About 3 * SEGMENT_CHARS of distinct numbered words, so the tokenizer sees it in several segments."""
    words: list[str] = []
    length = 0
    n = 0
    while length < 3 * SEGMENT_CHARS:
        word = f"w{n}"
        words.append(word)
        length += len(word) + 1
        n += 1
    text = " ".join(words)
    assert len(text) >= 3 * SEGMENT_CHARS - 1
    return text


def test_long_text_token_offsets_are_correct_across_segments(chunker: TokenChunker, long_text: str) -> None:
    spans = chunker.token_spans(long_text)
    assert all(a[1] <= b[0] for a, b in pairwise(spans))
    assert spans[-1][1] == len(long_text)
    assert "".join(long_text[start:end] for start, end in spans) == without_spaces(long_text)
    # no token straddles a space, in particular none at the segment cuts
    assert all(" " not in long_text[start:end] for start, end in spans)


def test_long_text_chunks_are_substrings_and_cover_every_word(chunker: TokenChunker, long_text: str) -> None:
    chunks = chunker.chunks(long_text, max_tokens=800, overlap=400)
    assert len(chunks) > 3
    covered = bytearray(len(long_text))
    for chunk in chunks:
        assert long_text[chunk.start : chunk.end] == chunk.text
        assert chunk.tokens <= 800
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    for match in re.finditer(r"\S+", long_text):
        assert all(covered[match.start() : match.end()]), match.group()
    assert chunks[0].start == 0 and chunks[-1].end == len(long_text)
    words_seen = {word for chunk in chunks for word in chunk.text.split()}
    assert {"w0", "w5000", f"w{len(long_text.split()) - 1}"} <= words_seen


def locate(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    places: list[tuple[int, int]] = []
    position = 0
    for piece in pieces:
        start = text.index(piece, position)
        places.append((start, start + len(piece)))
        position = start + len(piece)
    return places


@pytest.mark.parametrize("max_tokens", [1, 7, 64, 256])
def test_windows_have_at_most_n_tokens_and_cover_the_text_in_order(chunker: TokenChunker, max_tokens: int) -> None:
    spans = chunker.token_spans(PROSE)
    pieces = chunker.windows(PROSE, max_tokens)
    assert len(pieces) == math.ceil(len(spans) / max_tokens)
    for start, end in locate(PROSE, pieces):
        assert 0 < sum(1 for s, e in spans if start <= s and e <= end) <= max_tokens
    assert "".join(without_spaces(piece) for piece in pieces) == without_spaces(PROSE)


def test_windows_of_a_short_text_is_the_text_itself(chunker: TokenChunker) -> None:
    text = "  a short text \n"
    assert chunker.windows(text, 256) == [text]


# --- filters ------------------------------------------------------------------------------------------------

ATTRIBUTES: dict[str, Any] = {"author": "bob", "year": 2020, "score": 7.5, "draft": False, "public": True}


def eq(key: str, value: Any, kind: str = "eq") -> ComparisonFilter:
    return ComparisonFilter(type=kind, key=key, value=value)


def test_filter_model_validates_integers_into_floats() -> None:
    value = eq("a", 1).value
    assert value == 1.0 and isinstance(value, float)
    assert eq("a", True).value is True


@pytest.mark.parametrize(
    ("kind", "key", "value", "expected"),
    [
        ("eq", "author", "bob", True),
        ("eq", "author", "alice", False),
        ("eq", "year", 2020, True),
        ("eq", "year", 2021, False),
        ("eq", "score", 7.5, True),
        ("eq", "draft", False, True),
        ("eq", "draft", True, False),
        ("ne", "author", "bob", False),
        ("ne", "author", "alice", True),
        ("ne", "year", 2020, False),
        ("ne", "year", 1999, True),
        ("ne", "public", True, False),
        ("ne", "public", False, True),
        ("gt", "year", 2019, True),
        ("gt", "year", 2020, False),
        ("gte", "year", 2020, True),
        ("gte", "year", 2021, False),
        ("lt", "score", 8, True),
        ("lt", "score", 7.5, False),
        ("lte", "score", 7.5, True),
        ("lte", "score", 7, False),
        ("gt", "author", "alice", True),
        ("gt", "author", "carol", False),
        ("gte", "author", "bob", True),
        ("lt", "author", "carol", True),
        ("lt", "author", "bob", False),
        ("lte", "author", "bob", True),
        ("lte", "author", "alice", False),
        ("in", "author", ["alice", "bob"], True),
        ("in", "author", ["alice", "carol"], False),
        ("in", "year", [2019, 2020], True),
        ("in", "year", [2019, 2021], False),
        ("in", "author", "bob", True),
        ("nin", "author", ["alice", "bob"], False),
        ("nin", "author", ["alice", "carol"], True),
        ("nin", "year", [2020], False),
        ("nin", "year", [1, 2], True),
    ],
)
def test_comparison(kind: str, key: str, value: Any, expected: bool) -> None:
    assert matches(eq(key, value, kind), ATTRIBUTES) is expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("eq", False), ("gt", False), ("gte", False), ("lt", False), ("lte", False), ("in", False), ("ne", True)],
)
def test_missing_key_fails_everything_but_ne_and_nin(kind: str, expected: bool) -> None:
    value: Any = ["x"] if kind == "in" else "x"
    assert matches(eq("missing", value, kind), ATTRIBUTES) is expected
    assert matches(eq("missing", value, kind), None) is expected


def test_missing_key_passes_nin() -> None:
    assert matches(eq("missing", ["x", 1], "nin"), ATTRIBUTES) is True
    assert matches(eq("missing", ["x"], "nin"), {}) is True


@pytest.mark.parametrize("kind", ["eq", "gt", "gte", "lt", "lte", "in"])
def test_number_and_string_are_never_equal_or_ordered(kind: str) -> None:
    value: Any = ["2020"] if kind == "in" else "2020"
    assert matches(eq("year", value, kind), {"year": 2020}) is False
    number: Any = [5.0] if kind == "in" else 5
    assert matches(eq("label", number, kind), {"label": "5"}) is False


@pytest.mark.parametrize("kind", ["ne", "nin"])
def test_number_and_string_are_never_equal_so_negations_pass(kind: str) -> None:
    value: Any = ["2020"] if kind == "nin" else "2020"
    assert matches(eq("year", value, kind), {"year": 2020}) is True


@pytest.mark.parametrize("kind", ["gt", "gte", "lt", "lte"])
def test_booleans_are_never_ordered(kind: str) -> None:
    assert matches(eq("flag", True, kind), {"flag": True}) is False
    assert matches(eq("flag", False, kind), {"flag": True}) is False


def test_boolean_and_number_are_never_equal() -> None:
    assert matches(eq("flag", 1, "eq"), {"flag": True}) is False
    assert matches(eq("flag", True, "eq"), {"flag": 1}) is False
    assert matches(eq("flag", 0, "ne"), {"flag": False}) is True


def test_integer_attribute_equals_float_filter_value() -> None:
    assert matches(eq("n", 3, "eq"), {"n": 3}) is True
    assert matches(eq("n", 3.0, "in"), {"n": 3}) is True


def test_no_filter_passes_everything() -> None:
    assert matches(None, ATTRIBUTES) is True
    assert matches(None, None) is True
    assert matches(None, {}) is True


def test_compound_and_needs_every_part() -> None:
    both = CompoundFilter(type="and", filters=[eq("author", "bob"), eq("year", 2020, "gte")])
    assert matches(both, ATTRIBUTES) is True
    one = CompoundFilter(type="and", filters=[eq("author", "bob"), eq("year", 2021, "gte")])
    assert matches(one, ATTRIBUTES) is False


def test_compound_or_needs_any_part() -> None:
    one = CompoundFilter(type="or", filters=[eq("author", "alice"), eq("public", True)])
    assert matches(one, ATTRIBUTES) is True
    none = CompoundFilter(type="or", filters=[eq("author", "alice"), eq("public", False)])
    assert matches(none, ATTRIBUTES) is False


def test_nested_compound_filters() -> None:
    # author == bob AND (year < 2000 OR (public AND score >= 7))
    nested = CompoundFilter(
        type="and",
        filters=[
            eq("author", "bob"),
            CompoundFilter(
                type="or",
                filters=[
                    eq("year", 2000, "lt"),
                    CompoundFilter(type="and", filters=[eq("public", True), eq("score", 7, "gte")]),
                ],
            ),
        ],
    )
    assert matches(nested, ATTRIBUTES) is True
    assert matches(nested, {**ATTRIBUTES, "score": 6.9}) is False
    assert matches(nested, {**ATTRIBUTES, "score": 6.9, "year": 1999}) is True
    assert matches(nested, {**ATTRIBUTES, "author": "alice"}) is False


def test_compound_filter_parsed_from_json_dicts() -> None:
    parsed = CompoundFilter.model_validate(
        {
            "type": "or",
            "filters": [
                {"type": "eq", "key": "author", "value": "alice"},
                {"type": "and", "filters": [{"type": "gt", "key": "year", "value": 2010}]},
            ],
        }
    )
    assert isinstance(parsed.filters[1], CompoundFilter)
    assert matches(parsed, ATTRIBUTES) is True
    assert matches(parsed, {"year": 2000}) is False


# --- rank fusion --------------------------------------------------------------------------------------------


def test_k_is_ten() -> None:
    assert K == ranking.K == 10


def test_first_in_both_lists_scores_one() -> None:
    fused = fuse([([7, 1, 2], 1.0), ([7, 2, 1], 0.5)])
    assert fused[0] == (7, 1.0)


def test_scores_lie_in_zero_one_and_are_sorted_best_first() -> None:
    fused = fuse([([1, 2, 3, 4, 5], 1.0), ([5, 4, 3, 9], 0.5)])
    scores = [score for _, score in fused]
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert scores == sorted(scores, reverse=True)
    assert sorted(chunk for chunk, _ in fused) == [1, 2, 3, 4, 5, 9]


def test_fused_score_arithmetic() -> None:
    fused = dict(fuse([([1, 2], 1.0), ([2, 3], 0.5)]))
    best = 1.5 / (K + 1)
    assert fused[1] == pytest.approx((1 / (K + 1)) / best)
    assert fused[2] == pytest.approx((1 / (K + 2) + 0.5 / (K + 1)) / best)
    assert fused[3] == pytest.approx((0.5 / (K + 2)) / best)


def test_zero_weight_ignores_that_list() -> None:
    fused = fuse([([1, 2], 1.0), ([2, 1, 9], 0.0)])
    assert [chunk for chunk, _ in fused] == [1, 2]
    assert fused[0] == (1, 1.0)
    assert fused[1][1] == pytest.approx((K + 1) / (K + 2))


def test_both_weights_zero_gives_nothing() -> None:
    assert fuse([([1, 2], 0.0), ([2, 1], 0.0)]) == []
    assert fuse([]) == []


def test_empty_lists_give_nothing() -> None:
    assert fuse([([], 1.0), ([], 0.5)]) == []


def test_ranked_high_in_both_beats_first_in_one_with_equal_weights() -> None:
    both, only_first, only_second = 100, 200, 300
    fused = fuse([([only_first, both], 1.0), ([only_second, both], 1.0)])
    assert [chunk for chunk, _ in fused] == [both, only_first, only_second]
    assert fused[0][1] == pytest.approx((2 / (K + 2)) / (2 / (K + 1)))  # 11/12
    assert fused[1][1] == pytest.approx(0.5)
    assert fused[2][1] == pytest.approx(0.5)


def test_rank_k_plus_one_in_both_still_beats_first_in_one_but_k_plus_three_does_not() -> None:
    # 2 / (K + r) > 1 / (K + 1)  <=>  r < K + 2
    for rank, wins in [(K + 1, True), (K + 3, False)]:
        first = [200, *range(1000, 1000 + rank - 2), 100]
        second = [300, *range(2000, 2000 + rank - 2), 100]
        assert first.index(100) + 1 == rank and second.index(100) + 1 == rank
        scores = dict(fuse([(first, 1.0), (second, 1.0)]))
        assert (scores[100] > scores[200]) is wins
        assert scores[100] == pytest.approx((2 / (K + rank)) / (2 / (K + 1)))


def test_ties_keep_the_earlier_lists_order() -> None:
    assert fuse([([1], 1.0), ([2], 1.0)]) == [(1, 0.5), (2, 0.5)]
    assert fuse([([2], 1.0), ([1], 1.0)]) == [(2, 0.5), (1, 0.5)]


def test_default_style_weights_first_lists_top_beats_second_lists_top() -> None:
    fused = fuse([([1, 3], 1.0), ([2, 4], 0.5)])
    scores = dict(fused)
    assert fused[0][0] == 1
    assert scores[1] == pytest.approx(2 / 3)
    assert scores[2] == pytest.approx(1 / 3)
    assert scores[1] > scores[2]


# --- FTS5 match expressions ---------------------------------------------------------------------------------

SAFE_EXPRESSION = re.compile(r'"[^\W_]+"( OR "[^\W_]+")*')
HOSTILE_QUERIES = {  # query: rowids of the fixture table it finds
    '" OR 1=1 --': [],
    "NEAR(a b)": [],
    "col:value": [],
    "a AND (b": [],
    'foo* "bar': [],
    "-excluded +included": [],
    "x:y:z ^start": [],
    'text: "unterminated': [],
    "NOT refund": [1],
    "refund OR": [1],
    "refund AND": [1],
    "a'b;c": [],
    "{col1 col2}: word": [],
    "under_score": [],
    "\u00b2 \u217b \U0001d7d8": [],  # superscript two, small roman numeral twelve, double-struck zero
}


def test_stopwords_are_dropped_and_words_quoted_and_or_joined() -> None:
    assert match_expression("What is the refund policy?") == '"refund" OR "policy"'


def test_words_are_lowercased_and_duplicates_removed() -> None:
    assert match_expression("Refund refund REFUND policy Policy") == '"refund" OR "policy"'


def test_only_stopwords_still_gives_an_expression() -> None:
    assert match_expression("What is the") == '"what" OR "is" OR "the"'
    assert match_expression("the THE the") == '"the"'


@pytest.mark.parametrize("query", ["", "   ", "?!.,;", "--- ***", '""', "()", "___"])
def test_query_without_words_gives_none(query: str) -> None:
    assert match_expression(query) is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('" OR 1=1 --', '"1"'),
        ("NEAR(a b)", '"near" OR "b"'),
        ("col:value", '"col" OR "value"'),
        ("a AND (b", '"b"'),
        ('foo* "bar', '"foo" OR "bar"'),
        ("-excluded +included", '"excluded" OR "included"'),
    ],
)
def test_fts5_syntax_characters_become_plain_words(query: str, expected: str) -> None:
    assert match_expression(query) == expected


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_expression_only_holds_quoted_words(query: str) -> None:
    expression = match_expression(query)
    assert expression is not None
    assert SAFE_EXPRESSION.fullmatch(expression), expression


def test_term_cap_holds() -> None:
    query = " ".join(f"term{n}" for n in range(MAX_QUERY_TERMS + 36))
    expression = match_expression(query)
    assert expression is not None
    terms = expression.split(" OR ")
    assert len(terms) == MAX_QUERY_TERMS == 64
    assert terms[0] == '"term0"' and terms[-1] == f'"term{MAX_QUERY_TERMS - 1}"'


def test_unicode_words_are_kept() -> None:
    assert match_expression("Naïve café, Zürich!") == '"naïve" OR "café" OR "zürich"'


@pytest.fixture
def fts() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')")
    db.executemany(
        "INSERT INTO t (rowid, text) VALUES (?, ?)",
        [
            (1, "Refunds are issued within 30 days of purchase."),
            (2, "Shipping takes five business days; the naive cafe closes at noon."),
            (3, "Bridges over the river were built from old stone."),
        ],
    )
    yield db
    db.close()


def search(db: sqlite3.Connection, query: str) -> list[int]:
    expression = match_expression(query)
    assert expression is not None
    return [row[0] for row in db.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank", (expression,))]


@pytest.mark.parametrize("query", ['" OR 1=1 --', "col:value", "a AND (b"])
def test_hostile_queries_would_break_raw_fts5(fts: sqlite3.Connection, query: str) -> None:
    # proves the next test is meaningful: these strings are errors when given to MATCH as they are
    with pytest.raises(sqlite3.OperationalError):
        fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()


@pytest.mark.parametrize(("query", "expected"), HOSTILE_QUERIES.items())
def test_hostile_queries_run_without_sqlite_error(fts: sqlite3.Connection, query: str, expected: list[int]) -> None:
    assert search(fts, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What is the refund policy?", [1]),
        ("how many business days for shipping", [2, 1]),
        ("Café", [2]),
        ("stone bridges", [3]),
        ("refunds", [1]),
    ],
)
def test_normal_query_finds_the_matching_row(fts: sqlite3.Connection, query: str, expected: list[int]) -> None:
    assert search(fts, query) == expected


def test_booleans_in_a_list_stay_booleans() -> None:
    condition = ComparisonFilter(type="in", key="a", value=[True, "x"])
    assert matches(condition, {"a": True})
    assert not matches(condition, {"a": 1})


def test_affordable_terms_drop_the_commonest_words_first() -> None:
    terms = ["need", "receipt", "get", "repair"]
    postings = [18_000, 450, 9_600, 5_300]
    assert affordable_terms(terms, postings, budget=20_000) == ["receipt", "get", "repair"]
    assert affordable_terms(terms, postings, budget=6_000) == ["receipt", "repair"]
    assert affordable_terms(terms, postings, budget=10) == ["receipt"]  # the rarest always stays
    assert affordable_terms(terms, [1, 2, 3, 4], budget=20_000) == terms  # a small index keeps every word
