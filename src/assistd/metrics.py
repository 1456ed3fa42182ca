"""Prometheus metrics, served at `/metrics` when `ASSISTD_METRICS` is on.

The API processes of one `assistd serve --workers N` share their counts through files in a directory
(prometheus_client's multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`, set by `serve` before the processes
start), so whichever process answers reports them all. An `assistd worker` serves its own on
`ASSISTD_METRICS_PORT`. The queue gauges are read from the store at each scrape.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUESTS = Counter("assistd_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "assistd_http_request_duration_seconds",
    "Time to answer an HTTP request (a stream: until it ends).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RATE_LIMITED = Counter("assistd_rate_limited_total", "Requests refused with 429, by the limit they met.", ["limit"])
QUEUE_DEPTH = Gauge(
    "assistd_queue_depth",
    "Jobs waiting to be claimed (runs; files to ingest).",
    ["queue"],
    multiprocess_mode="mostrecent",
)
QUEUE_WAIT = Histogram(
    "assistd_run_queue_wait_seconds",
    "Time from a run's creation to a worker starting it.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
RUNS_FINISHED = Counter("assistd_runs_finished_total", "Runs that reached a final status.", ["status"])
RUN_SECONDS = Histogram(
    "assistd_run_duration_seconds",
    "Time from a run's creation to its final status.",
    ["status"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
TOKENS = Counter("assistd_tokens_total", "Tokens used, by kind of request, model and part.", ["kind", "model", "part"])
TOKENS_PER_SECOND = Histogram(
    "assistd_generation_tokens_per_second",
    "Completion tokens per second of one generation, by model.",
    ["model"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)


def count_tokens(kind: str, model: str, prompt: int, cached: int, completion: int) -> None:
    TOKENS.labels(kind, model, "prompt").inc(prompt)
    TOKENS.labels(kind, model, "cached").inc(cached)
    TOKENS.labels(kind, model, "completion").inc(completion)


def observe_generation(model: str, completion_tokens: int, seconds: float) -> None:
    if completion_tokens > 0 and seconds > 0:
        TOKENS_PER_SECOND.labels(model).observe(completion_tokens / seconds)


def observe_run_end(status: str, created_at: int, ended_at: float) -> None:
    RUNS_FINISHED.labels(status).inc()
    RUN_SECONDS.labels(status).observe(max(ended_at - created_at, 0.0))


def share_between_processes(directory: Path) -> None:
    """Make the processes started after this call (and before any of them counts) pool their metrics in
    `directory`, emptied first. Call it before those processes import this module."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def exposition() -> bytes:
    """Every metric in Prometheus' text format: this process's, or every process's in multiprocess mode."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)
