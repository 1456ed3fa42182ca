"""Run events across processes: the bus a run's events travel on, and their replay from the store."""
