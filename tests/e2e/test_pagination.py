"""Cursor pagination: limit, order, after, before, has_more, and the SDK's auto-pagination."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture(scope="module")
def thread_with_25(client: openai.OpenAI) -> tuple[str, list[str]]:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"m{i}"} for i in range(25)])
    ids = [m.id for m in client.beta.threads.messages.list(thread.id, order="asc", limit=100).data]
    assert [
        m.content[0].text.value for m in client.beta.threads.messages.list(thread.id, order="asc", limit=100).data
    ] == [f"m{i}" for i in range(25)]
    return thread.id, ids


def test_default_page_is_20_newest_first(client, thread_with_25) -> None:
    thread_id, ids = thread_with_25
    page = client.beta.threads.messages.list(thread_id)
    assert [m.id for m in page.data] == ids[::-1][:20]
    assert page.has_more is True
    assert page.first_id == ids[-1] and page.last_id == ids[5]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_after_walks_forward_to_the_end(client, thread_with_25, order) -> None:
    thread_id, ids = thread_with_25
    expected = ids if order == "asc" else ids[::-1]
    seen, after = [], None
    while True:
        page = client.beta.threads.messages.list(thread_id, order=order, limit=7, **({"after": after} if after else {}))
        seen += [m.id for m in page.data]
        if not page.has_more:
            break
        after = page.last_id
    assert seen == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_before_walks_backward_to_the_start(client, thread_with_25, order) -> None:
    thread_id, ids = thread_with_25
    expected = ids if order == "asc" else ids[::-1]
    page = client.beta.threads.messages.list(thread_id, order=order, limit=7, before=expected[-1])
    assert [m.id for m in page.data] == expected[-8:-1], "the page keeps list order, nearest the cursor last"
    assert page.has_more is True
    seen, before = [], expected[-1]
    while True:
        page = client.beta.threads.messages.list(thread_id, order=order, limit=7, before=before)
        seen = [m.id for m in page.data] + seen
        if not page.has_more:
            break
        before = page.first_id
    assert seen == expected[:-1]


def test_after_and_before_together(client, thread_with_25) -> None:
    thread_id, ids = thread_with_25
    page = client.beta.threads.messages.list(thread_id, order="asc", after=ids[3], before=ids[8])
    assert [m.id for m in page.data] == ids[4:8] and page.has_more is False


def test_sdk_auto_pagination(client, thread_with_25) -> None:
    thread_id, ids = thread_with_25
    assert [m.id for m in client.beta.threads.messages.list(thread_id, limit=4)] == ids[::-1]
    assert [m.id for m in client.beta.threads.messages.list(thread_id, limit=4, order="asc")] == ids


def test_assistants_auto_pagination(other_client) -> None:
    ids = [other_client.beta.assistants.create(model="local", name=f"p{i}").id for i in range(5)]
    listed = [a.id for a in other_client.beta.assistants.list(limit=2, order="asc")]
    assert listed[-5:] == ids


def test_empty_page(client, thread_with_25) -> None:
    thread_id, ids = thread_with_25
    page = client.beta.threads.messages.list(thread_id, after=ids[0])
    assert page.data == [] and page.has_more is False and page.first_id is None and page.last_id is None


@pytest.mark.parametrize(
    "params,param",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "not-an-id"}, "after"),
        ({"before": "asst_01m87f8kmj7e4k0tpxyq2e98hs"}, "before"),
    ],
)
def test_bad_list_parameters(http, thread_with_25, params, param) -> None:
    thread_id, _ = thread_with_25
    response = http.get(f"/v1/threads/{thread_id}/messages", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
