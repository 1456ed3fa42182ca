"""The summariser's map-reduce: a text beyond the context is summarised part by part, never cut off unread."""

from __future__ import annotations

import asyncio

from assistd.apps.condense import PART_INSTRUCTIONS, split
from assistd.apps.presets import SUMMARIZER
from assistd.engines.base import Chunk, Usage
from assistd.store import tables
from tests.fakes import ScriptedEngine
from tests.unit.test_run_states import drive, world  # noqa: F401  (world is a fixture)


def test_split_cuts_at_sentence_ends_into_about_equal_parts() -> None:
    text = " ".join(f"Sentence number {i} says something." for i in range(100))
    parts = split(text, 4)
    assert len(parts) == 4 and "".join(parts) == text
    assert all(part.rstrip().endswith(".") for part in parts)
    assert max(len(p) for p in parts) < 2 * min(len(p) for p in parts)
    assert split("no boundaries here " * 50, 3) == [p for p in split("no boundaries here " * 50, 3) if p.strip()]
    assert split("short", 1) == ["short"]


def _summarizer_run(url: str, engine: ScriptedEngine, words: int) -> tuple[tables.Run, list[str], list]:
    long_text = " ".join(f"Fact {i} is that the tide rose." for i in range(words // 7))
    return asyncio.run(drive(url, engine, user_text=long_text, app=SUMMARIZER.name))


def test_a_long_text_is_summarised_part_by_part(world) -> None:  # noqa: F811
    engine = ScriptedEngine()
    engine.script = [Chunk(text="A short summary."), Chunk(finish_reason="stop", usage=Usage(100, 4))]
    run, _, steps = _summarizer_run(world, engine, words=3000)
    assert run.status == "completed"
    maps, final = engine.requests[:-1], engine.requests[-1]
    assert len(maps) >= 4 and all(r.messages[0]["content"] == PART_INSTRUCTIONS for r in maps)
    covered = " ".join(r.messages[1]["content"] for r in maps)
    assert "Fact 0 " in covered and f"Fact {3000 // 7 - 1} " in covered  # every part was read
    assert final.messages[-1]["content"] == "\n\n".join(["A short summary."] * len(maps))
    assert run.usage["prompt_tokens"] == 100 * len(engine.requests)  # the parts count into the run's usage
    assert [s.type for s in steps] == ["message_creation"]


def test_a_text_that_fits_is_summarised_in_one_go(world) -> None:  # noqa: F811
    engine = ScriptedEngine()
    engine.script = [Chunk(text="Summary."), Chunk(finish_reason="stop", usage=Usage(10, 1))]
    run, _, _ = _summarizer_run(world, engine, words=200)
    assert run.status == "completed" and len(engine.requests) == 1


def test_the_app_is_the_run_s_not_its_assistant_s_metadata(world) -> None:  # noqa: F811
    """A run generates as the app named on it when it was created: metadata saying otherwise changes nothing."""
    engine = ScriptedEngine()
    engine.script = [Chunk(text="Whole."), Chunk(finish_reason="stop", usage=Usage(100, 1))]
    long_text = " ".join(f"Fact {i} is that the tide rose." for i in range(3000 // 7))
    run, _, _ = asyncio.run(
        drive(world, engine, user_text=long_text, assistant_metadata={"assistd_app": SUMMARIZER.name})
    )
    assert run.status == "completed" and run.app is None
    assert len(engine.requests) == 1, "no part summaries: the run names no app"
