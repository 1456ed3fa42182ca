"""Rate limits hold across API processes when Redis is configured: two `assistd serve` processes on one store
and one Redis count a project's requests in the same bucket, and another project is unaffected."""

from __future__ import annotations

import httpx

from deploy.localcluster import Redis
from tests.server import ServerProcess, run_cli


def test_two_api_processes_share_one_bucket(tmp_path) -> None:
    redis = Redis().start()
    servers: list[ServerProcess] = []
    try:
        run_cli(tmp_path, "projects", "create", "limited")
        run_cli(tmp_path, "projects", "create", "free")
        limited = run_cli(tmp_path, "keys", "create", "--project", "limited").strip()
        free = run_cli(tmp_path, "keys", "create", "--project", "free").strip()
        run_cli(tmp_path, "projects", "limits", "limited", "--rpm", "10")
        settings = {"redis_url": redis.url, "api_processes": "2"}
        servers = [ServerProcess(tmp_path, **settings).start() for _ in range(2)]
        answers = []
        for index in range(16):  # alternating between the two processes
            server = servers[index % 2]
            response = httpx.get(
                f"{server.base_url}/v1/assistants", headers={"Authorization": f"Bearer {limited}"}, timeout=10
            )
            answers.append(response.status_code)
        assert answers[:10] == [200] * 10  # one bucket of 10 for both, not 10 each
        assert answers[10:] == [429] * 6
        for server in servers:
            response = httpx.get(
                f"{server.base_url}/v1/assistants", headers={"Authorization": f"Bearer {free}"}, timeout=10
            )
            assert response.status_code == 200
    finally:
        for server in servers:
            server.stop()
        redis.stop()
