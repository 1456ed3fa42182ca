"""The pure parts of the file_search tool: citations by word overlap, the passages prompt, settings and results."""

from __future__ import annotations

import re

import pytest

from assistd.protocol.wire import file_search_call
from assistd.retrieval.search import Hit
from assistd.tools.file_search import (
    CITE_MIN_SHARED_WORDS,
    CITE_MIN_SUPPORT,
    MIN_FIRST_PASSAGE,
    PASSAGES_INTRO,
    Citation,
    cite,
    hits_of,
    options,
    passages_prompt,
    store_ids,
)

REFUNDS = "Refunds are issued within 30 days of purchase. Contact support by email to start a refund."
SHIPPING = "Shipping takes five business days worldwide. Tracking numbers arrive by text message."
GARDEN = "Tulips should be planted in autumn, six inches deep, in well-drained soil."


def hit(file_id: str, filename: str, text: str, score: float = 0.5, chunk_id: int = 1) -> Hit:
    return Hit(
        chunk_id=chunk_id,
        vector_store_id="vs_1",
        file_id=file_id,
        filename=filename,
        text=text,
        score=score,
        attributes={},
    )


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.findall(r"[^.!?\n]+[.!?]?", text) if s.strip()]


# --- cite ---------------------------------------------------------------------------------------------------


def test_thresholds() -> None:
    assert (CITE_MIN_SHARED_WORDS, CITE_MIN_SUPPORT) == (2, 0.5)


def test_cites_the_file_whose_passage_the_answer_repeats() -> None:
    answer = "Refunds are issued within 30 days of purchase."
    citation = cite(answer, [hit("file-garden", "garden.md", GARDEN), hit("file-faq", "faq.md", REFUNDS)])
    assert citation == Citation(
        marker=" 【1†faq.md】",
        annotations=[
            {
                "type": "file_citation",
                "text": "【1†faq.md】",
                "start_index": len(answer) + 1,
                "end_index": len(answer) + 1 + len("【1†faq.md】"),
                "file_citation": {"file_id": "file-faq", "quote": "Refunds are issued within 30 days of purchase."},
            }
        ],
    )


def test_annotation_indexes_point_at_the_marker_in_the_final_text() -> None:
    answer = "You can get refunds within 30 days of purchase."
    citation = cite(answer, [hit("file-faq", "faq.md", REFUNDS)])
    assert citation is not None
    (annotation,) = citation.annotations
    final = answer + citation.marker
    assert final[annotation["start_index"] : annotation["end_index"]] == annotation["text"]
    assert final.endswith(annotation["text"])


def test_quote_is_the_passage_sentence_sharing_most_words_with_the_answer() -> None:
    answer = "Contact support by email to start a refund."
    citation = cite(answer, [hit("file-faq", "faq.md", REFUNDS)])
    assert citation is not None
    quote = citation.annotations[0]["file_citation"]["quote"]
    assert quote == "Contact support by email to start a refund."
    assert quote in sentences(REFUNDS)


def test_quote_is_at_most_500_characters() -> None:
    passage = "Refund " + "policy " * 200 + "applies."
    citation = cite("The refund policy applies.", [hit("file-faq", "faq.md", passage)])
    assert citation is not None
    quote = citation.annotations[0]["file_citation"]["quote"]
    assert quote == passage[:500]


def test_quote_is_a_whole_sentence_even_with_a_decimal_number() -> None:
    passage = "Late payments incur a fee of 2.5 percent of the order total. Fees are waived for members."
    citation = cite("The fee is 2.5 percent of the order total.", [hit("file-fees", "fees.md", passage)])
    assert citation is not None
    assert citation.annotations[0]["file_citation"]["quote"] == (
        "Late payments incur a fee of 2.5 percent of the order total."
    )


def test_a_file_is_cited_once_even_if_several_passages_match() -> None:
    answer = "Refunds are issued within 30 days of purchase; contact support by email."
    hits = [
        hit("file-faq", "faq.md", "Refunds are issued within 30 days of purchase.", chunk_id=1),
        hit("file-faq", "faq.md", "Contact support by email about refunds issued within 30 days.", chunk_id=2),
    ]
    citation = cite(answer, hits)
    assert citation is not None
    assert citation.marker == " 【0†faq.md】"
    assert [a["file_citation"]["file_id"] for a in citation.annotations] == ["file-faq"]


def test_two_supporting_files_give_two_annotations_with_increasing_indexes() -> None:
    answer = "Refunds are issued within 30 days. Shipping takes five business days."
    hits = [hit("file-faq", "faq.md", REFUNDS), hit("file-garden", "garden.md", GARDEN)]
    hits.append(hit("file-ship", "shipping.md", SHIPPING))
    citation = cite(answer, hits)
    assert citation is not None
    assert citation.marker == " 【0†faq.md】 【2†shipping.md】"
    first, second = citation.annotations
    assert [first["text"], second["text"]] == ["【0†faq.md】", "【2†shipping.md】"]
    assert first["file_citation"]["file_id"] == "file-faq"
    assert second["file_citation"]["file_id"] == "file-ship"
    assert first["start_index"] < first["end_index"] < second["start_index"] < second["end_index"]
    assert first["start_index"] == len(answer) + 1
    assert second["start_index"] == first["end_index"] + 1
    final = answer + citation.marker
    for annotation in citation.annotations:
        assert final[annotation["start_index"] : annotation["end_index"]] == annotation["text"]
    assert first["file_citation"]["quote"] == "Refunds are issued within 30 days of purchase."
    assert second["file_citation"]["quote"] == "Shipping takes five business days worldwide."


@pytest.mark.parametrize(
    "answer",
    [
        "I don't know.",
        "The files do not say.",
        "It is what it is.",
        "",
        "   ",
    ],
)
def test_an_answer_unrelated_to_every_passage_gets_no_citation(answer: str) -> None:
    hits = [hit("file-faq", "faq.md", REFUNDS), hit("file-ship", "shipping.md", SHIPPING)]
    assert cite(answer, hits) is None


def test_no_hits_gives_no_citation() -> None:
    assert cite("Refunds are issued within 30 days of purchase.", []) is None


def test_one_shared_word_is_not_enough() -> None:
    assert cite("Refunds.", [hit("file-faq", "faq.md", REFUNDS)]) is None


def test_a_passage_supporting_less_than_half_the_answer_is_not_cited() -> None:
    answer = "Refunds within budget matter less than cheerful gardeners planting beautiful orchids."
    assert cite(answer, [hit("file-faq", "faq.md", REFUNDS)]) is None


def test_exactly_half_the_answer_supported_is_cited() -> None:
    # answer words: refunds, issued, orchids, gardeners -> 2 of 4 in the passage
    citation = cite("Refunds issued, orchids gardeners.", [hit("file-faq", "faq.md", REFUNDS)])
    assert citation is not None and citation.marker == " 【0†faq.md】"


# --- passages_prompt ----------------------------------------------------------------------------------------


def part(index: int, item: Hit) -> str:
    return f"[{index}] {item.filename}:\n{item.text.strip()}"


HITS = [
    hit("file-faq", "faq.md", "  " + REFUNDS + "\n", score=0.9),
    hit("file-ship", "shipping.md", SHIPPING, score=0.7),
    hit("file-garden", "garden.md", "Tulips.", score=0.2),
]


def test_passages_prompt_lists_every_passage_best_first_when_they_fit() -> None:
    prompt = passages_prompt(HITS, 100_000)
    assert prompt == "\n\n".join([PASSAGES_INTRO, part(0, HITS[0]), part(1, HITS[1]), part(2, HITS[2])])
    assert prompt.index("[0] faq.md:\nRefunds") < prompt.index("[1] shipping.md:") < prompt.index("[2] garden.md:")


def test_no_hits_is_just_the_intro() -> None:
    assert passages_prompt([], 10) == PASSAGES_INTRO


def test_passages_prompt_stops_adding_hits_once_over_budget() -> None:
    # room for the first passage and not the second; the small third one is not added after the stop either
    budget = len(PASSAGES_INTRO) + len(part(0, HITS[0])) + len(part(1, HITS[1])) - 1
    assert len(part(2, HITS[2])) < len(part(1, HITS[1]))
    prompt = passages_prompt(HITS, budget)
    assert prompt == f"{PASSAGES_INTRO}\n\n{part(0, HITS[0])}"


def test_passages_prompt_always_includes_a_truncated_first_passage() -> None:
    budget = len(PASSAGES_INTRO) + 2 + MIN_FIRST_PASSAGE + 10
    long_first = [hit("file-long", "long.md", "Refunds " * 100), *HITS[1:]]
    prompt = passages_prompt(long_first, budget)
    assert prompt == f"{PASSAGES_INTRO}\n\n{part(0, long_first[0])}"[:budget]
    assert "[1]" not in prompt


def test_the_first_passage_keeps_a_minimum_even_on_a_tiny_budget() -> None:
    long_first = [hit("file-long", "long.md", "Refunds " * 100)]
    prompt = passages_prompt(long_first, 10)
    assert prompt == PASSAGES_INTRO + f"\n\n{part(0, long_first[0])}"[:MIN_FIRST_PASSAGE]


@pytest.mark.parametrize("extra", [MIN_FIRST_PASSAGE + 2, 250, 300, 400, 1000])
def test_passages_prompt_never_exceeds_a_budget_above_the_minimum(extra: int) -> None:
    budget = len(PASSAGES_INTRO) + extra
    many = [hit(f"file-{i}", f"doc{i}.md", f"Passage number {i} about refunds and returns. " * 3) for i in range(8)]
    prompt = passages_prompt(many, budget)
    assert len(prompt) <= budget
    assert prompt.startswith(f"{PASSAGES_INTRO}\n\n[0] doc0.md:")


def test_passages_prompt_without_a_budget_keeps_every_passage() -> None:
    prompt = passages_prompt(HITS, None)
    assert prompt == passages_prompt(HITS, 100_000)


# --- store_ids, options -------------------------------------------------------------------------------------


def test_store_ids_dedupe_and_keep_assistant_then_thread_order() -> None:
    assistant = {"file_search": {"vector_store_ids": ["vs_a", "vs_b", "vs_a"]}}
    thread = {"file_search": {"vector_store_ids": ["vs_c", "vs_b", "vs_d"]}}
    assert store_ids(assistant, thread) == ["vs_a", "vs_b", "vs_c", "vs_d"]
    assert store_ids(thread, assistant) == ["vs_c", "vs_b", "vs_d", "vs_a"]


@pytest.mark.parametrize(
    "resources",
    [
        None,
        {},
        {"code_interpreter": {"file_ids": ["file-1"]}},
        {"file_search": None},
        {"file_search": {}},
        {"file_search": {"vector_store_ids": None}},
        {"file_search": {"vector_store_ids": []}},
    ],
)
def test_store_ids_tolerate_none_and_missing_keys(resources: dict | None) -> None:
    assert store_ids(resources, None) == []
    assert store_ids(resources, {"file_search": {"vector_store_ids": ["vs_t"]}}) == ["vs_t"]
    assert store_ids({"file_search": {"vector_store_ids": ["vs_a"]}}, resources) == ["vs_a"]


def test_store_ids_of_nothing_is_empty() -> None:
    assert store_ids() == []


def test_options_is_none_without_a_file_search_tool() -> None:
    assert options([]) is None
    assert options([{"type": "code_interpreter"}, {"type": "function", "function": {"name": "f"}}]) is None


def test_options_is_the_tools_settings() -> None:
    settings = {"max_num_results": 5, "ranking_options": {"score_threshold": 0.3}}
    tools = [{"type": "code_interpreter"}, {"type": "file_search", "file_search": settings}]
    assert options(tools) == settings


@pytest.mark.parametrize("tool", [{"type": "file_search"}, {"type": "file_search", "file_search": None}])
def test_options_of_a_bare_file_search_tool_is_empty(tool: dict) -> None:
    result = options([tool])
    assert result == {} and result is not None


# --- tool_call / hits_of ------------------------------------------------------------------------------------


def test_tool_call_shape() -> None:
    call = file_search_call("call_1", [HITS[1]], 0.25)
    assert call == {
        "id": "call_1",
        "type": "file_search",
        "file_search": {
            "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.25},
            "results": [
                {
                    "file_id": "file-ship",
                    "file_name": "shipping.md",
                    "score": 0.7,
                    "content": [{"type": "text", "text": SHIPPING}],
                }
            ],
        },
    }


def test_hits_of_tool_call_round_trips() -> None:
    back = hits_of(file_search_call("call_1", HITS, 0.0))
    assert [(h.file_id, h.filename, h.score, h.text) for h in back] == [
        (h.file_id, h.filename, h.score, h.text) for h in HITS
    ]


def test_hits_of_empty_results() -> None:
    assert hits_of(file_search_call("call_1", [], 0.0)) == []


def test_hits_of_joins_text_parts_and_tolerates_missing_content() -> None:
    call = file_search_call("call_1", HITS[:2], 0.0)
    call["file_search"]["results"][0]["content"] = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    del call["file_search"]["results"][1]["content"]
    back = hits_of(call)
    assert [h.text for h in back] == ["ab", ""]


def test_round_tripped_hits_cite_like_the_originals() -> None:
    answer = "Shipping takes five business days worldwide."
    original = cite(answer, HITS)
    assert original is not None and original.marker == " 【1†shipping.md】"
    assert cite(answer, hits_of(file_search_call("call_1", HITS, 0.0))) == original
