"""The openai_compat engine for real: a second assistd serves as the upstream of the session's server
(loopback only). Also: a models file that cannot be loaded stops the start-up with a message naming the entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import jsonschema
import openai
import pytest

from tests.conftest import checked_http_client
from tests.e2e.test_models import CHAT_MODEL, EMBEDDING_MODEL, PARAMETERS, WEATHER_TOOLS
from tests.server import ServerProcess, free_port


@pytest.fixture(scope="module")
def relay(env, tmp_path_factory) -> Iterator[openai.OpenAI]:
    """A server whose models all forward to the session server (the upstream)."""
    data_dir = tmp_path_factory.mktemp("relay")
    upstream = f"{env.base_url}/v1"
    models = data_dir / "models.toml"
    models.write_text(f'''
[models."relay-chat"]
engine = "openai_compat"
base_url = "{upstream}"
upstream_model = "{CHAT_MODEL}"
api_key_env = "RELAY_UPSTREAM_KEY"
timeout = 60

[models."relay-embed"]
engine = "openai_compat"
kind = "embedding"
base_url = "{upstream}"
upstream_model = "{EMBEDDING_MODEL}"
api_key_env = "RELAY_UPSTREAM_KEY"
dimensions = 384

[models."relay-unknown"]
engine = "openai_compat"
base_url = "{upstream}"
upstream_model = "no-such-model"
api_key_env = "RELAY_UPSTREAM_KEY"

[models."relay-bad-key"]
engine = "openai_compat"
base_url = "{upstream}"
upstream_model = "{CHAT_MODEL}"
api_key = "sk-wrong-upstream-key"

[models."relay-down"]
engine = "openai_compat"
base_url = "http://127.0.0.1:{free_port()}/v1"
upstream_model = "{CHAT_MODEL}"
timeout = 5

[aliases]
"gpt-4o-mini" = "relay-chat"
''')
    server = ServerProcess(
        data_dir, extra_env={"RELAY_UPSTREAM_KEY": env.key_a}, models_file=str(models), embedding_model="relay-embed"
    ).start()
    try:
        key = (data_dir / "api_key").read_text().strip()
        yield openai.OpenAI(
            base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, http_client=checked_http_client()
        )
    finally:
        server.stop()
        assert env.key_a not in server.log_text() and "sk-wrong-upstream-key" not in server.log_text()


def test_relay_lists_only_its_models(relay) -> None:
    assert {m.id for m in relay.models.list()} == {
        "relay-chat",
        "relay-embed",
        "relay-unknown",
        "relay-bad-key",
        "relay-down",
        "gpt-4o-mini",
    }


def test_chat_through_upstream_matches_upstream(relay, client) -> None:
    ask = dict(messages=[{"role": "user", "content": "Say something about rivers."}], max_tokens=24, temperature=0)
    direct = client.chat.completions.create(model=CHAT_MODEL, **ask)
    relayed = relay.chat.completions.create(model="relay-chat", **ask)
    assert relayed.model == "relay-chat"
    assert relayed.choices[0].message.content == direct.choices[0].message.content
    assert relayed.usage.completion_tokens == direct.usage.completion_tokens
    chunks = list(
        relay.chat.completions.create(model="gpt-4o-mini", stream=True, stream_options={"include_usage": True}, **ask)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == direct.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == direct.usage.completion_tokens


def test_tool_call_through_upstream(relay) -> None:
    completion = relay.chat.completions.create(
        model="relay-chat",
        messages=[{"role": "user", "content": "Weather in Lima?"}],
        tools=WEATHER_TOOLS,
        tool_choice="required",
        max_tokens=120,
    )
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])


def test_completions_and_embeddings_through_upstream(relay, client) -> None:
    direct = client.completions.create(model=CHAT_MODEL, prompt="Water is", max_tokens=8, temperature=0)
    relayed = relay.completions.create(model="relay-chat", prompt="Water is", max_tokens=8, temperature=0)
    assert relayed.choices[0].text == direct.choices[0].text
    upstream_vectors = client.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b c"]).data
    relayed_vectors = relay.embeddings.create(model="relay-embed", input=["a", "b c"]).data
    for ours, theirs in zip(relayed_vectors, upstream_vectors, strict=True):
        assert ours.embedding == pytest.approx(theirs.embedding, abs=1e-6)


def test_upstream_failures_map_to_openai_errors(relay) -> None:
    ask = dict(messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    with pytest.raises(openai.BadRequestError) as info:
        relay.chat.completions.create(model="relay-unknown", **ask)
    assert "upstream" in info.value.message.lower()
    with pytest.raises(openai.APIStatusError) as info:
        relay.chat.completions.create(model="relay-bad-key", **ask)
    assert info.value.status_code == 502 and "sk-wrong" not in info.value.message
    with pytest.raises(openai.APIStatusError) as info:
        relay.chat.completions.create(model="relay-down", **ask)
    assert info.value.status_code == 502
    with pytest.raises(openai.APIStatusError) as info:
        relay.chat.completions.create(model="relay-down", stream=True, **ask)
    assert info.value.status_code == 502


@pytest.mark.parametrize(
    "models_toml,named",
    [
        ('[models.a]\nengine = "llama_cpp"\npath = "/nonexistent/model.gguf"\n', "models.a"),
        ('[models.b]\nengine = "warp_drive"\n', "models.b"),
        (
            '[models.c]\nengine = "openai_compat"\nbase_url = "http://127.0.0.1:1/v1"\nupstream_model = "m"\n'
            'api_key_env = "ASSISTD_TEST_UNSET_VARIABLE"\n',
            "models.c.api_key_env",
        ),
        ("[models.d\n", "ASSISTD_MODELS_FILE"),
        (  # valid, but without the embedding model that vector stores use
            '[models.e]\nengine = "openai_compat"\nbase_url = "http://127.0.0.1:1/v1"\nupstream_model = "m"\n',
            "ASSISTD_EMBEDDING_MODEL",
        ),
    ],
)
def test_bad_models_file_fails_fast(tmp_path, models_toml, named) -> None:
    path = tmp_path / "models.toml"
    path.write_text(models_toml)
    result = subprocess.run(
        [sys.executable, "-m", "assistd", "serve"],
        env={
            **os.environ,
            "ASSISTD_DATA_DIR": str(tmp_path),
            "ASSISTD_MODELS_FILE": str(path),
            "ASSISTD_PORT": str(free_port()),
            "COLUMNS": "200",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert named in result.stderr


def test_vector_store_search_with_upstream_embeddings(relay: openai.OpenAI) -> None:
    """Ingestion and search embed through the configured upstream embedding model."""
    notes = relay.files.create(file=("notes.txt", b"The staff canteen opens at half past seven."), purpose="assistants")
    other = relay.files.create(file=("other.txt", b"Parking permits renew every January."), purpose="assistants")
    store = relay.vector_stores.create(name="relayed")
    batch = relay.vector_stores.file_batches.create_and_poll(
        store.id, file_ids=[notes.id, other.id], poll_interval_ms=100
    )
    assert batch.file_counts.completed == 2
    results = relay.vector_stores.search(store.id, query="when can I get breakfast at work").data
    assert results[0].file_id == notes.id
