"""The file_search tool of runs: search the assistant's and the thread's vector stores for the latest user
message, give the model the passages, and cite the files the answer draws on.

Search happens before generation, whenever the run has the tool and vector stores to search (small models
cannot be trusted to decide to call it). Citations are found after generation by word overlap between the
answer and each passage, so a file is cited only when the answer actually repeats what it says, and an answer
that says the knowledge base has nothing gets no citation.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from sqlalchemy import select

from assistd.clock import now
from assistd.ids import new_id
from assistd.lifecycle import FileStatus
from assistd.protocol import wire
from assistd.retrieval.search import Hit, Retriever
from assistd.retrieval.words import content_words
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import ThreadRepository, VectorStoreFileRepository, VectorStoreRepository
from assistd.tools.base import Citation, Gathered, Recorder, Tool

DEFAULT_MAX_RESULTS = 10
INGESTION_WAIT_SECONDS = 120.0
INGESTION_POLL_SECONDS = 0.2
CITE_MIN_SHARED_WORDS = 2
CITE_MIN_SUPPORT = 0.5  # share of the answer's content words found in the passage
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")  # a full stop inside "2.5" ends nothing
MIN_FIRST_PASSAGE = 200

PASSAGES_INTRO = (
    "Answer from the following excerpts of the user's files. If they do not contain the answer, say that the "
    "files do not say."
)


def options(tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run's file_search tool settings, or None when the run has no file_search tool."""
    for tool in tools:
        if tool.get("type") == "file_search":
            return tool.get("file_search") or {}
    return None


def store_ids(*tool_resources: dict[str, Any] | None) -> list[str]:
    """Vector store ids named by tool_resources (assistant's first, then thread's), without repeats."""
    found: list[str] = []
    for resources in tool_resources:
        for store_id in ((resources or {}).get("file_search") or {}).get("vector_store_ids") or []:
            if store_id not in found:
                found.append(store_id)
    return found


def hits_of(call: dict[str, Any]) -> list[Hit]:
    """The hits a stored file_search tool call holds (to resume a run without searching again)."""
    return [
        Hit(
            chunk_id=0,
            vector_store_id="",
            file_id=result["file_id"],
            filename=result["file_name"],
            text="".join(part.get("text") or "" for part in result.get("content") or []),
            score=result["score"],
            attributes={},
        )
        for result in call["file_search"]["results"]
    ]


def passages_prompt(hits: list[Hit], max_chars: int | None) -> str:
    """The excerpts for the model, best first: as many whole passages as fit in `max_chars` (no limit when None).
    The first passage is always there, cut to fit, but to no fewer than MIN_FIRST_PASSAGE characters."""
    prompt = PASSAGES_INTRO
    for index, hit in enumerate(hits):
        part = f"\n\n[{index}] {hit.filename}:\n{hit.text.strip()}"
        if max_chars is not None and len(prompt) + len(part) > max_chars:
            if index == 0:
                prompt += part[: max(max_chars - len(prompt), MIN_FIRST_PASSAGE)]
            break
        prompt += part
    return prompt


def _words(text: str) -> set[str]:
    return {word for word in content_words(text) if len(word) > 2 or word.isdigit()}


def cite(answer: str, hits: list[Hit]) -> Citation | None:
    """Citations for the files whose passages support `answer`, as markers to append and their annotations."""
    answer_words = _words(answer)
    if not answer_words:
        return None
    marker = ""
    annotations: list[dict[str, Any]] = []
    cited: set[str] = set()
    for index, hit in enumerate(hits):
        shared = answer_words & _words(hit.text)
        if hit.file_id in cited or len(shared) < CITE_MIN_SHARED_WORDS:
            continue
        if len(shared) / len(answer_words) < CITE_MIN_SUPPORT:
            continue
        cited.add(hit.file_id)
        text = f"【{index}†{hit.filename}】"
        start = len(answer) + len(marker) + 1
        marker += " " + text
        annotations.append(
            {
                "type": "file_citation",
                "text": text,
                "start_index": start,
                "end_index": start + len(text),
                "file_citation": {"file_id": hit.file_id, "quote": _best_sentence(hit.text, answer_words)},
            }
        )
    return Citation(marker, annotations) if annotations else None


def _best_sentence(text: str, answer_words: set[str]) -> str:
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    return max(sentences, key=lambda s: len(_words(s) & answer_words), default=text.strip())[:500]


def _earlier_hits(steps: Sequence[tables.RunStep]) -> list[Hit] | None:
    """The results of this run's search, when an earlier attempt made it (a resumed run does not search again)."""
    for step in steps:
        for call in step.step_details.get("tool_calls", []) if step.type == "tool_calls" else []:
            if call["type"] == "file_search":
                return hits_of(call)
    return None


class FileSearch(Tool):
    """The tool: resolves a run's stores, waits for their files to be ingested, searches for the latest user
    message, records the search as a step, and gives the model the passages and the answer its citations."""

    type: ClassVar[str] = "file_search"

    def __init__(self, db: Database, retriever: Retriever) -> None:
        self.db = db
        self.retriever = retriever

    async def gather(
        self, run: tables.Run, steps: Sequence[tables.RunStep], recorder: Recorder, gathered: Gathered, room: int | None
    ) -> None:
        settings = options(run.tools)
        if settings is None:
            return
        hits = _earlier_hits(steps)
        if hits is None:
            hits = await self.search(run, settings, await self._last_user_text(run))
            if hits is None:
                return
            threshold = (settings.get("ranking_options") or {}).get("score_threshold") or 0.0
            await recorder.add_tool_step(run, [wire.file_search_call(new_id("call"), hits, threshold)])
        gathered.system.append(passages_prompt(hits, room))
        if hits:
            gathered.citers.append(functools.partial(cite, hits=hits))

    async def _last_user_text(self, run: tables.Run) -> str:
        async with self.db.read() as session:
            message = await session.scalar(
                select(tables.Message)
                .where(
                    tables.Message.project_id == run.project_id,
                    tables.Message.thread_id == run.thread_id,
                    tables.Message.role == "user",
                )
                .order_by(tables.Message.id.desc())
                .limit(1)
            )
        if message is None:
            return ""
        return "\n".join(block["text"]["value"] for block in message.content if block.get("type") == "text")

    async def search(self, run: tables.Run, settings: dict[str, Any], query: str) -> list[Hit] | None:
        """The passages for `query`, best first; None when neither the assistant nor the thread has a store."""
        async with self.db.read() as session:
            thread = await ThreadRepository(session, run.project_id).get(run.thread_id)
        wanted = store_ids(run.tool_resources, thread.tool_resources if thread else None)
        if not wanted:
            return None
        if not query.strip():
            return []
        stores = await self._ready_stores(run.project_id, wanted)
        ranking = settings.get("ranking_options") or {}
        return await self.retriever.search(
            run.project_id,
            stores,
            query,
            max_results=settings.get("max_num_results") or DEFAULT_MAX_RESULTS,
            score_threshold=ranking.get("score_threshold") or 0.0,
        )

    async def _ready_stores(self, project_id: str, wanted: list[str]) -> list[tables.VectorStore]:
        """The project's live stores among `wanted`, once none has files still being ingested (or the wait ends);
        they are marked active then. The wait itself only reads."""
        deadline = time.monotonic() + INGESTION_WAIT_SECONDS
        while True:
            moment = now()
            async with self.db.read() as session:
                found = await VectorStoreRepository(session, project_id).get_many(wanted)
                stores = [s for s in found if (wire.vector_store_expires_at(s) or moment + 1) > moment]
                files = VectorStoreFileRepository(session, project_id)
                busy = [s for s in stores if (await files.counts(s.id))[FileStatus.IN_PROGRESS]]
            if not busy or time.monotonic() >= deadline:
                break
            await asyncio.sleep(INGESTION_POLL_SECONDS)
        async with self.db.write() as session:
            await VectorStoreRepository(session, project_id).touch([s.id for s in stores], moment)
        return stores
