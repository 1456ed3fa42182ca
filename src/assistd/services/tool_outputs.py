"""Tool outputs submitted for a run waiting on function calls: checked against the calls pending, then written
into the run's tool-calls step."""

from __future__ import annotations

from assistd.clock import now
from assistd.errors import InvalidRequest
from assistd.lifecycle import RunStatus, StepStatus
from assistd.schemas.runs import SubmitToolOutputs
from assistd.store import tables
from assistd.store.repositories import RunStepRepository


def check_tool_outputs(run: tables.Run, body: SubmitToolOutputs) -> None:
    """Refuse outputs for a run not waiting for them, or that do not answer each pending call exactly once."""
    if run.status != RunStatus.REQUIRES_ACTION:
        raise InvalidRequest(
            f"Runs in status '{run.status}' do not accept tool outputs.",
            param="run_id",
            code="run_not_requires_action",
        )
    assert run.required_action is not None  # set whenever a run requires action
    pending = [call["id"] for call in run.required_action["submit_tool_outputs"]["tool_calls"]]
    given = [output.tool_call_id for output in body.tool_outputs]
    if sorted(given) == sorted(pending):
        return
    missing, unknown = set(pending) - set(given), set(given) - set(pending)
    problem = (
        f"missing outputs for {sorted(missing)}"
        if missing
        else f"unknown or repeated tool call ids {sorted(unknown) or given}"
    )
    raise InvalidRequest(f"Tool outputs must answer every pending tool call once: {problem}.", param="tool_outputs")


async def complete_tool_calls(session, project_id: str, run_id: str, body: SubmitToolOutputs) -> None:
    """Write the outputs into the run's unfinished tool-calls step and complete it."""
    outputs = {output.tool_call_id: output.output for output in body.tool_outputs}
    for step in await RunStepRepository(session, project_id).for_run(run_id):
        if step.type == "tool_calls" and step.status == StepStatus.IN_PROGRESS:
            calls = [
                {**call, "function": {**call["function"], "output": outputs.get(call["id"])}}
                for call in step.step_details["tool_calls"]
            ]
            step.step_details = {"type": "tool_calls", "tool_calls": calls}
            step.status, step.completed_at = StepStatus.COMPLETED, now()
