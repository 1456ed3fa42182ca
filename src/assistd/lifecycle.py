"""Statuses of runs, run steps, messages, vector stores and their files, and how a run may move between them.

The one home of every status the API shows and the store keeps. Each enum's values are OpenAI's strings (a
`StrEnum` member *is* its string, so it goes into columns and JSON as is). A run changes status only by a guarded
UPDATE (`WHERE status IN sources_of(target)`), so two workers, or a worker and a cancel, never both win:

    queued ──► in_progress ──► requires_action ──► queued (outputs submitted) ...
       │            ├──► completed | incomplete | failed | expired
       │            └──► cancelling ──► cancelled
       └──► cancelled | failed | expired          requires_action ──► cancelled | expired | failed

This module imports nothing of assistd: every layer may use it.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"


class StepStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    EXPIRED = "expired"


class MessageStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    INCOMPLETE = "incomplete"
    COMPLETED = "completed"


class FileStatus(StrEnum):
    """A vector store file's ingestion (and a file batch's, from its files)."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class VectorStoreStatus(StrEnum):
    EXPIRED = "expired"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


# A run in one of these holds its thread: the database allows one per thread (a partial unique index).
ACTIVE_RUN = (RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.REQUIRES_ACTION, RunStatus.CANCELLING)
TERMINAL_RUN = frozenset(
    {RunStatus.COMPLETED, RunStatus.INCOMPLETE, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.EXPIRED}
)
# A run stream ends at one of these: the run is over, or waits for the client's tool outputs.
STREAM_ENDING_RUN = TERMINAL_RUN | {RunStatus.REQUIRES_ACTION}
# A worker may claim a run in one of these (a cancelling run is claimed to be cancelled).
CLAIMABLE_RUN = (RunStatus.QUEUED, RunStatus.CANCELLING)
# In these, a live lease on the run means a worker has it.
LEASED_RUN = (RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.CANCELLING)

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.IN_PROGRESS, RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.EXPIRED}),
    RunStatus.IN_PROGRESS: frozenset(
        {
            RunStatus.REQUIRES_ACTION,
            RunStatus.COMPLETED,
            RunStatus.INCOMPLETE,
            RunStatus.FAILED,
            RunStatus.CANCELLING,
            RunStatus.EXPIRED,
        }
    ),
    RunStatus.REQUIRES_ACTION: frozenset({RunStatus.QUEUED, RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.EXPIRED}),
    RunStatus.CANCELLING: frozenset({RunStatus.CANCELLED, RunStatus.FAILED}),
    **{status: frozenset() for status in TERMINAL_RUN},
}

# The step status a run's unfinished steps take when the run ends this way, and the step's timestamp for it.
STEP_ENDING = {
    RunStatus.CANCELLED: (StepStatus.CANCELLED, "cancelled_at"),
    RunStatus.EXPIRED: (StepStatus.EXPIRED, "expired_at"),
    RunStatus.FAILED: (StepStatus.FAILED, "failed_at"),
}
STEP_ENDED_AT = {
    StepStatus.COMPLETED: "completed_at",
    StepStatus.CANCELLED: "cancelled_at",
    StepStatus.FAILED: "failed_at",
    StepStatus.EXPIRED: "expired_at",
}


def sources_of(target: RunStatus) -> frozenset[RunStatus]:
    """The statuses from which a run may move to `target`."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def is_allowed(source: str, target: str) -> bool:
    """Whether a run may move from `source` to `target`."""
    return source in TRANSITIONS and target in TRANSITIONS[RunStatus(source)]
