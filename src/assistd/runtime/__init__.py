"""Run execution: the run state machine, the job queue with leases, the event bus, the worker and the executor."""
