"""Tenancy: every object of project alpha is invisible (404) to project beta, on every route."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest


@pytest.fixture(scope="module")
def alpha_objects(client: openai.OpenAI) -> dict[str, str]:
    assistant = client.beta.assistants.create(model="local", name="alpha's", metadata={"owner": "alpha"})
    thread = client.beta.threads.create(metadata={"owner": "alpha"})
    message = client.beta.threads.messages.create(thread.id, role="user", content="alpha's secret")
    return {"assistant": assistant.id, "thread": thread.id, "message": message.id}


ATTEMPTS: dict[str, Callable[[openai.OpenAI, dict[str, str]], object]] = {
    "assistants.retrieve": lambda c, o: c.beta.assistants.retrieve(o["assistant"]),
    "assistants.update": lambda c, o: c.beta.assistants.update(o["assistant"], name="stolen"),
    "assistants.delete": lambda c, o: c.beta.assistants.delete(o["assistant"]),
    "threads.retrieve": lambda c, o: c.beta.threads.retrieve(o["thread"]),
    "threads.update": lambda c, o: c.beta.threads.update(o["thread"], metadata={"owner": "beta"}),
    "threads.delete": lambda c, o: c.beta.threads.delete(o["thread"]),
    "messages.create": lambda c, o: c.beta.threads.messages.create(o["thread"], role="user", content="x"),
    "messages.list": lambda c, o: c.beta.threads.messages.list(o["thread"]),
    "messages.retrieve": lambda c, o: c.beta.threads.messages.retrieve(o["message"], thread_id=o["thread"]),
    "messages.update": lambda c, o: c.beta.threads.messages.update(
        o["message"], thread_id=o["thread"], metadata={"a": "b"}
    ),
    "messages.delete": lambda c, o: c.beta.threads.messages.delete(o["message"], thread_id=o["thread"]),
}


@pytest.mark.parametrize("route", list(ATTEMPTS))
def test_other_project_gets_404(other_client: openai.OpenAI, alpha_objects, route) -> None:
    with pytest.raises(openai.NotFoundError):
        ATTEMPTS[route](other_client, alpha_objects)


def test_lists_do_not_show_other_projects(client, other_client, alpha_objects) -> None:
    beta_ids = {a.id for a in other_client.beta.assistants.list(limit=100)}
    assert alpha_objects["assistant"] not in beta_ids
    alpha_ids = {a.id for a in client.beta.assistants.list(limit=100)}
    assert alpha_objects["assistant"] in alpha_ids and not beta_ids & alpha_ids
    # a cursor taken from the other project reveals nothing either
    page = other_client.beta.assistants.list(after=alpha_objects["assistant"], limit=100)
    assert alpha_objects["assistant"] not in {a.id for a in page.data}


def test_alpha_objects_untouched_after_attempts(client, other_client, alpha_objects) -> None:
    for attempt in ATTEMPTS.values():
        with pytest.raises(openai.NotFoundError):
            attempt(other_client, alpha_objects)
    assert client.beta.assistants.retrieve(alpha_objects["assistant"]).name == "alpha's"
    assert client.beta.threads.retrieve(alpha_objects["thread"]).metadata == {"owner": "alpha"}
    messages = client.beta.threads.messages.list(alpha_objects["thread"]).data
    assert [m.id for m in messages] == [alpha_objects["message"]]
    assert messages[0].metadata == {}


@pytest.fixture(scope="module")
def beta_file(other_client: openai.OpenAI) -> str:
    return other_client.files.create(file=("beta.txt", b"beta's secret"), purpose="assistants").id


REFERENCES: dict[str, Callable[[openai.OpenAI, str, str], object]] = {
    "assistant code_interpreter files": lambda c, f, t: c.beta.assistants.create(
        model="local", tools=[{"type": "code_interpreter"}], tool_resources={"code_interpreter": {"file_ids": [f]}}
    ),
    "thread code_interpreter files": lambda c, f, t: c.beta.threads.create(
        tool_resources={"code_interpreter": {"file_ids": [f]}}
    ),
    "thread update code_interpreter files": lambda c, f, t: c.beta.threads.update(
        t, tool_resources={"code_interpreter": {"file_ids": [f]}}
    ),
    "message attachment": lambda c, f, t: c.beta.threads.messages.create(
        t, role="user", content="see file", attachments=[{"file_id": f, "tools": [{"type": "code_interpreter"}]}]
    ),
    "message image_file part": lambda c, f, t: c.beta.threads.messages.create(
        t, role="user", content=[{"type": "image_file", "image_file": {"file_id": f}}]
    ),
    "thread's first message attachment": lambda c, f, t: c.beta.threads.create(
        messages=[{"role": "user", "content": "x", "attachments": [{"file_id": f, "tools": [{"type": "file_search"}]}]}]
    ),
}


@pytest.mark.parametrize("where", list(REFERENCES))
def test_another_projects_file_referenced_in_a_body_is_a_404(client, beta_file, where) -> None:
    """A file id inside a body is checked like one in a route: another project's is a 404 and nothing is written."""
    thread = client.beta.threads.create()
    before = [m.id for m in client.beta.threads.messages.list(thread.id)]
    with pytest.raises(openai.NotFoundError) as info:
        REFERENCES[where](client, beta_file, thread.id)
    assert info.value.status_code == 404 and beta_file in info.value.message
    assert [m.id for m in client.beta.threads.messages.list(thread.id)] == before
    own = client.files.create(file=("alpha.txt", b"alpha's own"), purpose="assistants").id
    REFERENCES[where](client, own, thread.id)  # the project's own file is accepted in the same place
