"""/metrics: Prometheus' text format, without a key; mounted only when `ASSISTD_METRICS` is on."""

from __future__ import annotations

from fastapi import APIRouter, Response

from assistd import metrics
from assistd.api.deps import ServicesDep
from assistd.store.queue import waiting_jobs

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def serve_metrics(services: ServicesDep) -> Response:
    for queue, depth in (await waiting_jobs(services.db)).items():
        metrics.QUEUE_DEPTH.labels(queue).set(depth)
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
