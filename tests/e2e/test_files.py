"""/v1/files through the official SDK: upload, list, retrieve, download, delete, and bad uploads."""

from __future__ import annotations

import os

import httpx
import openai
import pytest

from tests.conftest import MAX_UPLOAD_BYTES, assert_error_shape


def test_round_trip_keeps_every_byte(client: openai.OpenAI) -> None:
    data = os.urandom(300_000) + b"\x00\xff" * 10
    created = client.files.create(file=("blob.bin", data), purpose="user_data")
    assert created.object == "file" and created.id.startswith("file-")
    assert (created.filename, created.bytes, created.purpose) == ("blob.bin", len(data), "user_data")
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).read() == data


def test_list_filters_by_purpose_and_pages(client: openai.OpenAI) -> None:
    made = [client.files.create(file=(f"p{i}.txt", f"page {i}".encode()), purpose="batch").id for i in range(3)]
    batch_files = [f.id for f in client.files.list(purpose="batch") if f.id in made]
    assert batch_files == made[::-1]  # newest first
    assert all(f.purpose == "batch" for f in client.files.list(purpose="batch"))
    first = client.files.list(purpose="batch", limit=2, order="asc")
    assert len(first.data) == 2 and first.has_more is not None
    following = client.files.list(purpose="batch", limit=2, order="asc", after=first.data[-1].id)
    assert not {f.id for f in first.data} & {f.id for f in following.data}


def test_delete(client: openai.OpenAI) -> None:
    created = client.files.create(file=("gone.txt", b"soon gone"), purpose="assistants")
    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)


def test_empty_upload_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("empty.txt", b""), purpose="assistants")
    assert caught.value.body["param"] == "file"


def test_oversized_upload_is_413_and_stores_nothing(client: openai.OpenAI) -> None:
    before = {f.id for f in client.files.list()}
    with pytest.raises(openai.APIStatusError) as caught:
        client.files.create(file=("big.bin", b"x" * (MAX_UPLOAD_BYTES + 1)), purpose="assistants")
    assert caught.value.status_code == 413
    assert {f.id for f in client.files.list()} == before


def test_bad_purpose_and_missing_fields_are_400(env, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("a.txt", b"a"), purpose="homework")  # type: ignore[arg-type]
    assert caught.value.body["param"] == "purpose"
    with env.http(env.key_a) as http:
        missing_file = http.post("/v1/files", files={"purpose": (None, "assistants")})
        missing_purpose = http.post("/v1/files", files={"file": ("a.txt", b"a")})
        not_multipart = http.post("/v1/files", json={"purpose": "assistants"})
    for response, param in ((missing_file, "file"), (missing_purpose, "purpose"), (not_multipart, "file")):
        assert response.status_code == 400
        assert assert_error_shape(response)["param"] == param


def test_expires_after(client: openai.OpenAI) -> None:
    created = client.files.create(
        file=("temp.txt", b"temporary"), purpose="assistants", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert created.expires_at == created.created_at + 3600


def test_other_project_cannot_see_files(client: openai.OpenAI, other_client: openai.OpenAI) -> None:
    created = client.files.create(file=("mine.txt", b"alpha only"), purpose="assistants")
    for attempt in (
        lambda: other_client.files.retrieve(created.id),
        lambda: other_client.files.content(created.id),
        lambda: other_client.files.delete(created.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert created.id not in {f.id for f in other_client.files.list()}
    assert client.files.retrieve(created.id).id == created.id


def test_upload_without_key_is_401(env) -> None:
    response = httpx.post(f"{env.base_url}/v1/files", files={"file": ("a.txt", b"a"), "purpose": (None, "assistants")})
    assert response.status_code == 401


def test_a_file_name_no_store_can_keep_is_400_and_stores_nothing(client: openai.OpenAI, http) -> None:
    """Raw multipart (clients percent-encode control characters in names; a hostile one need not)."""
    before = [f.id for f in client.files.list()]
    body = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="bad\x00name.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
    )
    response = http.post("/v1/files", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "file" and "NUL" in response.json()["error"]["message"]
    assert [f.id for f in client.files.list()] == before
