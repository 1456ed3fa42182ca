"""The run state machine: which status may follow which. Every change of status is one guarded UPDATE
(`WHERE status IN (allowed sources)`), so two workers, or a worker and a cancel, never both win.

    queued ──► in_progress ──► requires_action ──► queued (outputs submitted) ...
       │            ├──► completed | incomplete | failed | expired
       │            └──► cancelling ──► cancelled
       └──► cancelled | failed | expired          requires_action ──► cancelled | expired | failed
"""

from __future__ import annotations

from assistd.store.tables import ACTIVE_RUN_STATUSES

TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled", "expired"})
ACTIVE = frozenset(ACTIVE_RUN_STATUSES)  # defined with the table: its unique index relies on the same list

TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"in_progress", "cancelled", "failed", "expired"}),
    "in_progress": frozenset({"requires_action", "completed", "incomplete", "failed", "cancelling", "expired"}),
    "requires_action": frozenset({"queued", "cancelled", "failed", "expired"}),
    "cancelling": frozenset({"cancelled", "failed"}),
    **{status: frozenset() for status in TERMINAL},
}


def sources_of(target: str) -> frozenset[str]:
    """The statuses from which a run may move to `target`."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def is_allowed(source: str, target: str) -> bool:
    return target in TRANSITIONS.get(source, frozenset())
