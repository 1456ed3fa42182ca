"""No shared disk needed to scale out: on PostgreSQL uploaded bytes live in the database, so two API processes
and a worker, each with its own data directory (as on three machines), share files through PostgreSQL alone.
A file uploaded through one API process is ingested by the worker, searched and downloaded through the other,
and deleting it removes its bytes from the database."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import openai

from deploy.localcluster import Cluster, Postgres, Process, free_port, wait_healthy
from tests.server import query_value

DOC = (
    "# The lighthouse keeper's log\n\n"
    "The keeper of Skerryvore lit the lamp at dusk and trimmed its wicks every four hours. "
    "Fog horns sounded twice a minute whenever the tide turned in a gale.\n"
)


def wait_ingested(client: openai.OpenAI, store_id: str, file_id: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while (file := client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)).status == "in_progress":
        assert time.monotonic() < deadline, f"{file_id} still in progress after {timeout} s"
        time.sleep(0.2)
    return file


def test_a_file_uploaded_on_one_machine_is_ingested_and_served_by_others(tmp_path: Path) -> None:
    pg_root = Path(tempfile.mkdtemp(prefix="assistd-pg-"))
    cluster = Cluster(tmp_path, api=0, workers=0, postgres=Postgres(pg_root / "pg").start())
    try:
        cluster.start()  # PostgreSQL, Redis and the migrated database; the processes come next
        machines = {name: tmp_path / name for name in ("api-a", "api-b", "worker")}
        for name, data_dir in machines.items():
            data_dir.mkdir()
            env = cluster.env(ASSISTD_DATA_DIR=str(data_dir), ASSISTD_PORT=str(free_port()))
            if name == "worker":
                cluster.worker_processes.append(Process(["worker"], env, tmp_path / f"{name}.log").start())
            else:
                cluster.servers.append(Process(["serve"], env, tmp_path / f"{name}.log").start())
        for url, server in zip(cluster.base_urls, cluster.servers, strict=True):
            wait_healthy(url, process=server.process)
        cluster.cli("projects", "create", "blobs")
        key = cluster.cli("keys", "create", "--project", "blobs").strip()
        first, second = (
            openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60) for url in cluster.base_urls
        )

        big = os.urandom(2 * 1024 * 1024 + 12345)  # three parts in the database
        doc = first.files.create(file=("keeper.md", DOC.encode()), purpose="assistants")
        data = first.files.create(file=("data.bin", big), purpose="assistants")
        assert data.bytes == len(big)

        store = first.vector_stores.create(name="log")
        second.vector_stores.files.create(file_id=doc.id, vector_store_id=store.id)
        ingested = wait_ingested(second, store.id, doc.id)
        assert ingested.status == "completed", ingested.last_error
        results = list(second.vector_stores.search(store.id, query="When did the keeper light the lamp?"))
        assert results and results[0].file_id == doc.id
        assert "Skerryvore" in results[0].content[0].text

        downloaded = second.files.content(data.id).read()
        assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(big).hexdigest()
        assert second.files.content(doc.id).read() == DOC.encode()
        assert not [path for data_dir in machines.values() for path in data_dir.glob("files/**/*")]

        count = f"SELECT count(*) FROM file_blobs WHERE file_id = '{data.id}'"
        assert query_value(cluster.database_url, count) == 3
        assert second.files.delete(data.id).deleted
        assert query_value(cluster.database_url, count) == 0
    finally:
        cluster.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
