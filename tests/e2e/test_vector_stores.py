"""Vector stores through the official SDK: lifecycle, files and batches with background ingestion, hybrid
search with filters, and bad files that fail alone while the store keeps working."""

from __future__ import annotations

import time

import openai
import pytest

FACTS = {
    "zephyr.md": "# Project Zephyr\n\nThe launch code for Project Zephyr is 7-4-1-9, chosen by Dana Okafor.\n",
    "fruit.txt": "Bananas are a yellow fruit rich in potassium. Apples grow in orchards in cool climates.\n",
    "refunds.html": "<html><body><h1>Refunds</h1><p>Refunds reach your card within 14 days.</p>"
    "<script>var hidden = 'never indexed';</script></body></html>",
}


def upload(client: openai.OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


@pytest.fixture(scope="module")
def knowledge(client: openai.OpenAI) -> dict[str, str]:
    """A store holding the three FACTS files, ingested; returns file ids by name, the store id and the batch id."""
    ids = {name: upload(client, name, text.encode()) for name, text in FACTS.items()}
    store = client.vector_stores.create(name="facts", metadata={"team": "support"})
    batch = client.vector_stores.file_batches.create_and_poll(
        store.id, file_ids=list(ids.values()), poll_interval_ms=100
    )
    assert batch.status == "completed" and batch.file_counts.completed == 3
    return {**ids, "store": store.id, "batch": batch.id}


def test_lifecycle(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(
        name="lifecycle", metadata={"k": "v"}, expires_after={"anchor": "last_active_at", "days": 2}
    )
    assert (store.object, store.name, store.metadata, store.status) == (
        "vector_store",
        "lifecycle",
        {"k": "v"},
        "completed",
    )
    assert store.file_counts.total == 0 and store.usage_bytes == 0
    assert store.expires_at == store.last_active_at + 2 * 86400
    assert client.vector_stores.retrieve(store.id).id == store.id
    updated = client.vector_stores.update(store.id, name="renamed", metadata={"k": "w"}, expires_after=None)
    assert (updated.name, updated.metadata, updated.expires_at) == ("renamed", {"k": "w"}, None)
    assert store.id in {s.id for s in client.vector_stores.list(limit=100)}
    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_store_reports_its_files(client: openai.OpenAI, knowledge) -> None:
    store = client.vector_stores.retrieve(knowledge["store"])
    assert store.status == "completed"
    assert (store.file_counts.completed, store.file_counts.total) == (3, 3)
    files = list(client.vector_stores.files.list(knowledge["store"]))
    assert {f.id for f in files} == {knowledge[name] for name in FACTS}
    assert all(f.status == "completed" and f.usage_bytes > 0 for f in files)
    assert store.usage_bytes == sum(f.usage_bytes for f in files)
    # auto chunking is reported as the static sizes it stands for
    assert files[0].chunking_strategy.static.max_chunk_size_tokens == 800
    assert files[0].chunking_strategy.static.chunk_overlap_tokens == 400


def test_search_ranks_the_file_that_answers_first(client: openai.OpenAI, knowledge) -> None:
    for query, expected in (
        ("What is the launch code for Project Zephyr?", "zephyr.md"),
        ("which fruit contains potassium", "fruit.txt"),
        ("how long until I get my money back", "refunds.html"),
    ):
        results = list(client.vector_stores.search(knowledge["store"], query=query))
        assert results[0].filename == expected, (query, [(r.filename, r.score) for r in results])
        assert results[0].file_id == knowledge[expected]
        assert results[0].content[0].type == "text" and results[0].content[0].text
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_search_options(client: openai.OpenAI, knowledge) -> None:
    store = knowledge["store"]
    assert len(list(client.vector_stores.search(store, query="launch code", max_num_results=1))) == 1
    strict = list(client.vector_stores.search(store, query="launch code", ranking_options={"score_threshold": 0.9}))
    assert [r.filename for r in strict] == ["zephyr.md"]
    html = list(client.vector_stores.search(store, query="never indexed hidden"))
    assert all("never indexed" not in r.content[0].text for r in html)  # script text is not content


def test_attributes_filter_search(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="filtered")
    for region, text in (("eu", "Shipping to Europe takes 5 days."), ("us", "Shipping to America takes 3 days.")):
        file_id = upload(client, f"shipping-{region}.txt", text.encode())
        created = client.vector_stores.files.create_and_poll(
            file_id, vector_store_id=store.id, attributes={"region": region, "year": 2026}, poll_interval_ms=100
        )
        assert created.status == "completed" and created.attributes == {"region": region, "year": 2026}
    only_eu = list(
        client.vector_stores.search(
            store.id, query="shipping days", filters={"type": "eq", "key": "region", "value": "eu"}
        )
    )
    assert [r.filename for r in only_eu] == ["shipping-eu.txt"] and only_eu[0].attributes["region"] == "eu"
    both = {
        "type": "or",
        "filters": [{"type": "eq", "key": "region", "value": "us"}, {"type": "gte", "key": "year", "value": 2026}],
    }
    assert len(list(client.vector_stores.search(store.id, query="shipping", filters=both))) == 2
    none = {
        "type": "and",
        "filters": [{"type": "eq", "key": "region", "value": "us"}, {"type": "lt", "key": "year", "value": 2000}],
    }
    assert list(client.vector_stores.search(store.id, query="shipping", filters=none)) == []


def test_vector_store_file_routes(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="routes")
    file_id = upload(client, "manual.md", b"# Manual\n\nHold the power button for ten seconds to reset the unit.\n")
    created = client.vector_stores.files.create_and_poll(
        file_id,
        vector_store_id=store.id,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}},
        poll_interval_ms=100,
    )
    assert created.chunking_strategy.static.max_chunk_size_tokens == 100
    assert client.vector_stores.files.retrieve(file_id, vector_store_id=store.id).status == "completed"
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="completed")] == [file_id]
    assert list(client.vector_stores.files.list(store.id, filter="failed")) == []
    updated = client.vector_stores.files.update(file_id, vector_store_id=store.id, attributes={"lang": "en"})
    assert updated.attributes == {"lang": "en"}
    content = list(client.vector_stores.files.content(file_id, vector_store_id=store.id))
    assert "Hold the power button" in content[0].text
    removed = client.vector_stores.files.delete(file_id, vector_store_id=store.id)
    assert removed.deleted
    assert list(client.vector_stores.search(store.id, query="power button reset")) == []
    assert client.files.retrieve(file_id).id == file_id  # the file itself stays


def test_upload_and_poll(client: openai.OpenAI, tmp_path) -> None:
    store = client.vector_stores.create(name="uploaded")
    paths = []
    for i, text in enumerate(("Otters hold hands while sleeping.", "Owls can rotate their heads 270 degrees.")):
        path = tmp_path / f"animal{i}.txt"
        path.write_text(text)
        paths.append(path)
    handles = [path.open("rb") for path in paths]
    try:
        batch = client.vector_stores.file_batches.upload_and_poll(store.id, files=handles, poll_interval_ms=100)
    finally:
        for handle in handles:
            handle.close()
    assert batch.status == "completed" and batch.file_counts.completed == 2
    batch_files = list(client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id))
    assert len(batch_files) == 2
    assert client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).id == batch.id
    assert client.vector_stores.search(store.id, query="owl head rotation").data[0].filename == "animal1.txt"


def test_bad_files_fail_alone(client: openai.OpenAI, knowledge) -> None:
    store = knowledge["store"]
    bad = {
        "garbage.pdf": b"\x00\x9f\x12 not a pdf at all \x00" * 50,
        "blank.txt": b"   \n\n  \t ",
        "archive.exe": b"MZ\x90\x00",
    }
    ids = {name: upload(client, name, data) for name, data in bad.items()}
    batch = client.vector_stores.file_batches.create_and_poll(store, file_ids=list(ids.values()), poll_interval_ms=100)
    assert batch.status == "failed" and batch.file_counts.failed == 3
    errors = {name: client.vector_stores.files.retrieve(ids[name], vector_store_id=store).last_error for name in bad}
    assert errors["garbage.pdf"].code == "invalid_file"
    assert errors["blank.txt"].code == "invalid_file"
    assert errors["archive.exe"].code == "unsupported_file"
    # the good files are all still there and searchable
    counts = client.vector_stores.retrieve(store).file_counts
    assert (counts.completed, counts.failed) == (3, 3)
    assert client.vector_stores.search(store, query="launch code Zephyr").data[0].filename == "zephyr.md"
    for file_id in ids.values():
        client.vector_stores.files.delete(file_id, vector_store_id=store)


def test_unknown_file_ids_are_404_and_add_nothing(client: openai.OpenAI, knowledge) -> None:
    missing = "file-01m87qkskz3xcchjdtssz8p73q"
    stores_before = {s.id for s in client.vector_stores.list(limit=100)}
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(name="never", file_ids=[knowledge["zephyr.md"], missing])
    assert {s.id for s in client.vector_stores.list(limit=100)} == stores_before
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id=knowledge["store"], file_id=missing)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.create(knowledge["store"], file_ids=[knowledge["fruit.txt"], missing])
    assert client.vector_stores.retrieve(knowledge["store"]).file_counts.total == 3


def test_deleting_a_file_removes_it_from_every_store(client: openai.OpenAI) -> None:
    file_id = upload(client, "shared.txt", b"The quokka is a small marsupial from Rottnest Island.")
    stores = [client.vector_stores.create(name=f"shared{i}", file_ids=[file_id]).id for i in range(2)]
    for store in stores:
        deadline = time.time() + 30
        while client.vector_stores.retrieve(store).status == "in_progress" and time.time() < deadline:
            time.sleep(0.1)
        assert [r.file_id for r in client.vector_stores.search(store, query="quokka marsupial")] == [file_id]
    client.files.delete(file_id)
    for store in stores:
        assert client.vector_stores.retrieve(store).file_counts.total == 0
        assert list(client.vector_stores.search(store, query="quokka marsupial")) == []


def test_cancel_batch(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="cancelled")
    paragraph = "Every sentence here talks about lighthouses, tides and the keepers of the coast. " * 200
    ids = [upload(client, f"long{i}.txt", f"{i} {paragraph}".encode()) for i in range(8)]
    batch = client.vector_stores.file_batches.create(store.id, file_ids=ids)
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled"
    assert cancelled.file_counts.cancelled >= 1 and cancelled.file_counts.in_progress == 0
    time.sleep(1)
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert counts.in_progress == 0 and counts.cancelled == cancelled.file_counts.cancelled
    done = client.vector_stores.file_batches.create_and_poll(store.id, file_ids=ids[:1], poll_interval_ms=100)
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.file_batches.cancel(done.id, vector_store_id=store.id)


def test_bad_requests_are_400(client: openai.OpenAI, knowledge) -> None:
    store = knowledge["store"]
    attempts = [
        lambda: client.vector_stores.search(store, query=""),
        lambda: client.vector_stores.search(store, query="x", max_num_results=51),
        lambda: client.vector_stores.search(store, query="x", filters={"type": "near", "key": "a", "value": 1}),
        lambda: client.vector_stores.create(
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 60}}
        ),
        lambda: client.vector_stores.create(
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 5000, "chunk_overlap_tokens": 0}}
        ),
        lambda: client.vector_stores.files.update(
            knowledge["zephyr.md"], vector_store_id=store, attributes={f"k{i}": i for i in range(17)}
        ),
    ]
    for attempt in attempts:
        with pytest.raises(openai.BadRequestError):
            attempt()


ISOLATION = {
    "retrieve": lambda c, k: c.vector_stores.retrieve(k["store"]),
    "update": lambda c, k: c.vector_stores.update(k["store"], name="stolen"),
    "delete": lambda c, k: c.vector_stores.delete(k["store"]),
    "search": lambda c, k: c.vector_stores.search(k["store"], query="launch code"),
    "files.create": lambda c, k: c.vector_stores.files.create(vector_store_id=k["store"], file_id=k["zephyr.md"]),
    "files.list": lambda c, k: c.vector_stores.files.list(k["store"]),
    "files.retrieve": lambda c, k: c.vector_stores.files.retrieve(k["zephyr.md"], vector_store_id=k["store"]),
    "files.delete": lambda c, k: c.vector_stores.files.delete(k["zephyr.md"], vector_store_id=k["store"]),
    "files.content": lambda c, k: list(c.vector_stores.files.content(k["zephyr.md"], vector_store_id=k["store"])),
    "file_batches.create": lambda c, k: c.vector_stores.file_batches.create(k["store"], file_ids=[k["zephyr.md"]]),
    "file_batches.retrieve": lambda c, k: c.vector_stores.file_batches.retrieve(k["batch"], vector_store_id=k["store"]),
    "file_batches.cancel": lambda c, k: c.vector_stores.file_batches.cancel(k["batch"], vector_store_id=k["store"]),
    "file_batches.list_files": lambda c, k: c.vector_stores.file_batches.list_files(
        k["batch"], vector_store_id=k["store"]
    ),
    "files.update": lambda c, k: c.vector_stores.files.update(
        k["zephyr.md"], vector_store_id=k["store"], attributes={"stolen": True}
    ),
}


@pytest.mark.parametrize("route", list(ISOLATION))
def test_other_project_gets_404(other_client: openai.OpenAI, knowledge, route) -> None:
    with pytest.raises(openai.NotFoundError):
        ISOLATION[route](other_client, knowledge)
