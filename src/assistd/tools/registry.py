"""The tools runs may use, in one registry the executor asks for every run (it names no tool itself)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistd.engines.base import Usage
from assistd.store import tables
from assistd.tools.base import Gathered, Recorder, Tool
from assistd.tools.file_search import FileSearch
from assistd.tools.function import FunctionTool


class ToolRegistry:
    """The registered tools, in the order their hooks run (a run uses those it has)."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self.tools = list(tools)

    def of(self, run: tables.Run) -> list[Tool]:
        """The registered tools the run has."""
        return [tool for tool in self.tools if tool.offered(run)]

    async def gather(
        self, run: tables.Run, steps: Sequence[tables.RunStep], recorder: Recorder, room: int | None
    ) -> Gathered:
        """What the run's tools give the model before it answers."""
        gathered = Gathered()
        for tool in self.of(run):
            await tool.gather(run, steps, recorder, gathered, room)
        return gathered

    def history(self, steps: Sequence[tables.RunStep]) -> tuple[list[dict[str, Any]], int]:
        """The conversation turns of the tool calls in `steps` and their outputs, and how many rounds they took."""
        turns: list[dict[str, Any]] = []
        rounds = 0
        for step in steps:
            of_step = [turn for tool in self.tools for turn in tool.history(step)]
            rounds += bool(of_step)
            turns += of_step
        return turns, rounds

    def declare(self, run: tables.Run, rounds: int, max_rounds: int) -> dict[str, Any]:
        """The request fields that offer the run's tools to the model for its next round."""
        fields: dict[str, Any] = {}
        for tool in self.of(run):
            fields.update(tool.declare(run, rounds, max_rounds))
        return fields

    async def take_calls(
        self,
        run: tables.Run,
        calls: list[dict[str, Any]],
        usage: Usage,
        steps: Sequence[tables.RunStep],
        recorder: Recorder,
    ) -> bool:
        """Hand the model's calls to the tools they call; False when no tool acted on any."""
        acted = False
        for tool in self.of(run):
            acted = await tool.take_calls(run, calls, usage, steps, recorder) or acted
        return acted


def run_tools(file_search: FileSearch | None = None) -> ToolRegistry:
    """The tools of runs: functions (the client's), and file_search where this process can search."""
    return ToolRegistry([FunctionTool(), *([file_search] if file_search is not None else [])])
