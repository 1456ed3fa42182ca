"""A GGUF model run in-process by llama.cpp (llama-cpp-python), on CPU by default.

One model is loaded once per process. llama.cpp calls block and a context is not thread-safe, so every
generation runs on the engine's single worker thread: concurrent requests queue in arrival order (FIFO) and
each streams as soon as its turn comes. Tokens travel to the event loop as they are produced; a consumer
that stops listening (a client that disconnects) stops the generation at the next token.

A prompt evaluates only what its longest evaluated prefix lacks: the live context's own, or a state saved in the
prompt cache (prompt_cache.py) when another conversation took the context meanwhile.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, cast

import llama_cpp
from llama_cpp import Llama, LlamaGrammar, LogitsProcessorList, StoppingCriteriaList, llama_types
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from assistd.engines.base import Chunk, FinishReason, GenerationRequest, SchemaBounds, ToolCallDelta, Usage
from assistd.engines.cpus import usable_cpus
from assistd.engines.grammar import generation_grammar
from assistd.engines.packaged import ModelFileError
from assistd.engines.prompt_cache import DEFAULT_PROMPT_CACHE_BYTES, PromptCache, batch_sizes, common_prefix_length
from assistd.engines.prompting import function_specs, template_messages
from assistd.errors import InvalidRequest
from assistd.ids import new_id

log = logging.getLogger(__name__)

# Used when neither the request nor the model's configured defaults set a sampling parameter.
SAMPLING_FALLBACKS = {"temperature": 1.0, "top_p": 1.0, "repeat_penalty": 1.0}
_END = object()
_SEQUENCE = 0  # llama-cpp-python evaluates every token in sequence 0


class _Piece(NamedTuple):
    """A step of a generation: its text, and the counts so far for the usage."""

    text: str
    finish_reason: FinishReason | None
    generated: int  # tokens sampled, the end-of-turn token included
    reused: int  # prompt tokens taken from an evaluated prefix rather than evaluated


class LlamaCppEngine:
    """TextEngine over one GGUF file."""

    def __init__(
        self,
        model_id: str,
        model_path: Path,
        *,
        context_length: int = 4096,
        threads: int | None = None,
        defaults: dict[str, float] | None = None,
        schema_bounds: SchemaBounds = SchemaBounds(),
        prompt_cache_bytes: int = DEFAULT_PROMPT_CACHE_BYTES,
    ) -> None:
        if not model_path.is_file():
            raise ModelFileError(f"model file '{model_path}' does not exist")
        self.model_id = model_id
        self.schema_bounds = schema_bounds
        try:
            self._llama = Llama(
                model_path=str(model_path),
                n_ctx=context_length,
                n_threads=threads or usable_cpus(),
                n_threads_batch=threads or usable_cpus(),
                verbose=False,
                seed=0,
            )
        except Exception as exc:  # llama.cpp reports load failures as ValueError/RuntimeError
            raise ModelFileError(f"cannot load '{model_path}': {exc}") from exc
        self.context_length = self._llama.n_ctx()
        self.defaults = {**SAMPLING_FALLBACKS, **(defaults or {})}
        template = self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelFileError(f"'{model_path}' has no chat template in its metadata")
        vocab = self._llama._model
        self._eos_text = vocab.token_get_text(self._llama.token_eos())
        self._formatter = Jinja2ChatFormatter(
            template=template, eos_token=self._eos_text, bos_token=vocab.token_get_text(self._llama.token_bos())
        )
        self.late_system_messages = self._renders_late_system()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{model_id}")
        self._should_stop: Callable[[], bool] | None = None  # asked by llama.cpp while it evaluates a batch
        self._abort_callback = llama_cpp.ggml_abort_callback(self._abort_requested)  # llama.cpp points to it
        self._waiting = 0  # generations submitted to the worker and not started yet
        self._waiting_lock = threading.Lock()
        # None: every prompt is evaluated from scratch
        self._prompt_cache = PromptCache(prompt_cache_bytes) if prompt_cache_bytes > 0 else None
        self._exact_tokens = 0  # leading tokens of the live context evaluated in a prompt (see prompt_cache.py)
        self._last_tokenized: tuple[str, list[int]] = ("", [])  # a run counts its prompt's tokens, then sends it
        self._longest_token_bytes = max(
            len(self._llama.detokenize([token], special=True)) for token in range(self._llama.n_vocab())
        )

    def render_chat(self, request: GenerationRequest) -> str:
        """The prompt text for a chat request, through the model's own chat template."""
        messages = template_messages(
            request.messages or [], request.tools, request.tool_choice, request.parallel_tool_calls
        )
        # plain role/content dicts, which is all the template reads (llama_types has a TypedDict for each role)
        return self._formatter(messages=cast(list[llama_types.ChatCompletionRequestMessage], messages)).prompt

    def _renders_late_system(self) -> bool:
        """Whether the chat template renders a system message that follows other messages."""
        probe = "a late system message"
        conversation = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}]
        late = [*conversation, {"role": "system", "content": probe}, {"role": "user", "content": "3"}]
        try:
            return probe in self.render_chat(GenerationRequest(messages=late))
        except Exception:  # the template raised: "conversation roles must alternate" and the like
            return False

    def _surely_too_long(self, request: GenerationRequest) -> str | None:
        """Why the prompt cannot fit the context, known without rendering or tokenizing it (both cost time in
        proportion to its size): more messages than the context has tokens, or more bytes of text (function
        definitions included) than the context could hold at the longest token of the vocabulary. None when it
        may fit."""
        if request.messages is None:
            size = len((request.prompt or "").encode("utf-8", "surrogatepass"))
        elif len(request.messages) > self.context_length:
            return f"{len(request.messages)} messages"
        else:
            size = sum(_text_bytes(message.get("content")) for message in request.messages)
            if request.tool_choice != "none":  # the function definitions go into the prompt as JSON
                size += _text_bytes(json.dumps(function_specs(request.tools), ensure_ascii=False))
        if size > self.context_length * self._longest_token_bytes:
            return f"{size} bytes of text"
        return None

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def _tokenize(self, text: str) -> list[int]:
        return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    async def _prompt_tokens(self, prompt: str) -> list[int]:
        """The prompt's tokens (a copy), tokenized off the loop; the last prompt's are kept, so counting a prompt
        and then generating from it tokenizes it once."""
        text, tokens = self._last_tokenized
        if text != prompt:
            tokens = await asyncio.to_thread(self._tokenize, prompt)
            self._last_tokenized = (prompt, tokens)
        return list(tokens)

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """The prompt's tokens; for a prompt that surely cannot fit, a number above the context (uncounted)."""
        if self._surely_too_long(request):
            return self.context_length + 1
        prompt = self.render_chat(request) if request.messages is not None else request.prompt or ""
        return len(await self._prompt_tokens(prompt))

    def check(self, request: GenerationRequest) -> None:
        """Tools and formats are enforced by a grammar: one that cannot be built is the caller's 400."""
        self._grammar(request)

    def _grammar(self, request: GenerationRequest) -> tuple[str | None, bool]:
        """The request's grammar (see grammar.py), proven to parse in llama.cpp itself, and whether the output
        may be a call. llama-cpp-python would carry on with a grammar llama.cpp refused, and crash the process."""
        is_chat = request.messages is not None
        grammar_text, may_call = generation_grammar(
            tools=request.tools if is_chat else (),
            tool_choice=request.tool_choice,
            response_format=request.response_format,
            parallel_tool_calls=request.parallel_tool_calls,
            bounds=self.schema_bounds,
        )
        if grammar_text is not None:
            sampler = llama_cpp.llama_sampler_init_grammar(self._llama._model.vocab, grammar_text.encode(), b"root")
            if not sampler:
                raise InvalidRequest(
                    "Unsupported JSON schema: the grammar it needs is too large or complex for the model's sampler.",
                    param="tools" if may_call else "response_format",
                    code="invalid_schema",
                )
            llama_cpp.llama_sampler_free(sampler)
        return grammar_text, may_call

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        is_chat = request.messages is not None
        if (excess := self._surely_too_long(request)) is not None:
            raise InvalidRequest(
                f"This model's maximum context length is {self.context_length} tokens, and the prompt's {excess} "
                "cannot fit in it. Shorten the messages.",
                param="messages" if is_chat else "prompt",
                code="context_length_exceeded",
            )
        prompt = self.render_chat(request) if is_chat else request.prompt or ""
        grammar_text, may_call = self._grammar(request)
        tokens = await self._prompt_tokens(prompt)
        prompt_tokens = len(tokens)
        available = self.context_length - prompt_tokens
        if available < 1:
            raise InvalidRequest(
                f"This model's maximum context length is {self.context_length} tokens, but the prompt has "
                f"{prompt_tokens} tokens. Shorten the messages.",
                param="messages" if is_chat else "prompt",
                code="context_length_exceeded",
            )
        max_tokens = available if request.max_tokens is None else min(request.max_tokens, available)
        stops = [*request.stop, self._eos_text] if is_chat else list(request.stop)
        options = self._sampling(request)
        if self._llama._model.add_bos_token():  # as llama-cpp-python does for a prompt given as text
            tokens.insert(0, self._llama.token_bos())
        pieces = self._generate(tokens, max_tokens, stops, grammar_text, options)
        if may_call:
            async for chunk in self._as_tool_call_or_text(pieces, prompt_tokens):
                yield chunk
        else:
            async for chunk in self._as_text(pieces, prompt_tokens):
                yield chunk

    def _sampling(self, request: GenerationRequest) -> dict[str, Any]:
        def pick(name: str) -> Any:
            value = getattr(request, name)
            return self.defaults[name] if value is None else value

        return {
            "temperature": pick("temperature"),
            "top_p": pick("top_p"),
            "repeat_penalty": self.defaults["repeat_penalty"],
            "presence_penalty": request.presence_penalty or 0.0,
            "frequency_penalty": request.frequency_penalty or 0.0,
            "seed": request.seed,
        }

    async def _generate(
        self, tokens: list[int], max_tokens: int, stops: list[str], grammar_text: str | None, options: dict[str, Any]
    ) -> AsyncIterator[_Piece]:
        """The generation's pieces from the worker thread, as they come."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        seen: list[int] = []  # lengths of the token sequence at each sampling step

        def count_and_check(input_ids: Any, _logits: Any) -> bool:
            """Called by llama.cpp once per sampled token (and once more at the end); True stops generation."""
            seen.append(len(input_ids))
            return cancelled.is_set()

        eos = self._llama.token_eos()

        def never_empty(_input_ids: Any, logits: Any) -> Any:
            """The first token may not end the turn: a completion is never empty."""
            if not seen:
                logits[eos] = -float("inf")
            return logits

        def prompt_evaluated(_input_ids: Any, logits: Any) -> Any:
            """Before the first token is sampled the prompt is in: from here `count_and_check` stops generation."""
            if not seen:
                self._abort_on(None)
            return logits

        def generated() -> int:
            """Tokens sampled so far, the end-of-turn token included."""
            return max(seen) - seen[0] + 1 if seen else 0

        def work() -> None:
            answered = False
            with self._waiting_lock:
                self._waiting -= 1
            try:
                if cancelled.is_set():
                    return
                grammar = LlamaGrammar.from_string(grammar_text, verbose=False) if grammar_text else None
                self._abort_on(cancelled.is_set)
                reused = self._evaluate_prompt(tokens)
                # The whole prompt is evaluated: create_completion samples at once. stream=True: an iterator of
                # chunks (create_completion's annotation is not overloaded on `stream`)
                stream = cast(
                    Iterator[llama_types.CreateCompletionStreamResponse],
                    self._llama.create_completion(
                        tokens,
                        max_tokens=max_tokens,
                        stop=stops,
                        stream=True,
                        grammar=grammar,
                        stopping_criteria=StoppingCriteriaList([count_and_check]),
                        logits_processor=LogitsProcessorList([prompt_evaluated, never_empty]),
                        **options,
                    ),
                )
                for part in stream:
                    choice = part["choices"][0]
                    piece = _Piece(choice["text"], choice["finish_reason"], generated(), reused)
                    loop.call_soon_threadsafe(queue.put_nowait, piece)
                    if cancelled.is_set():
                        break
                if cancelled.is_set():
                    log.info(
                        "generation on %s stopped after %d tokens: nobody is listening", self.model_id, generated()
                    )
                answered = not cancelled.is_set()
            except BaseException as exc:
                if cancelled.is_set():  # llama.cpp aborted the prompt's evaluation: "llama_decode returned 2"
                    log.info("generation on %s stopped in its prompt (%s): nobody is listening", self.model_id, exc)
                else:  # handed to the consumer, raised there
                    loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                self._abort_on(None)
                loop.call_soon_threadsafe(queue.put_nowait, _END)
            if answered and self._prompt_cache is not None:
                self._evaluate_answer()

        with self._waiting_lock:
            self._waiting += 1
        job = loop.run_in_executor(self._worker, contextvars.copy_context().run, work)  # logs keep the request id
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()
            if job.done():
                job.exception()  # already reported through the queue

    def _evaluate_prompt(self, tokens: list[int]) -> int:
        """Bring the context to `tokens`, all evaluated, from the longest prefix the live context or the prompt
        cache holds; the number of tokens reused. A prompt stopped half way leaves the batches it finished."""
        reused = self._reuse_prefix(tokens) if self._prompt_cache is not None and tokens else 0
        if not reused:
            self._llama.reset()
        self._exact_tokens = reused
        self._evaluate_batches(tokens[reused:])
        return reused

    def _evaluate_batches(self, tokens: list[int]) -> None:
        """Evaluate `tokens` after the live context's in batches of two or more; a batch stopped half way
        leaves the ones before it."""
        for size in batch_sizes(len(tokens), self._llama.n_batch):
            self._llama.eval(tokens[:size])
            tokens = tokens[size:]
            if size > 1:
                self._exact_tokens = self._llama.n_tokens

    def _evaluate_answer(self) -> None:
        """Evaluate the answer just sent again, as a prompt would: generated one at a time, its tokens got other
        logits than a prompt's, so a prompt could not reuse them. Afterwards the conversation's next prompt,
        which holds the answer, reuses it, as raw llama-cpp-python reuses its whole context. This runs while the
        engine is idle, and stops for the next generation."""
        answer = self._llama.input_ids[self._exact_tokens : self._llama.n_tokens].tolist()
        if len(answer) < 2 or self._waiting:
            return
        self._llama.n_tokens = self._exact_tokens  # the next eval drops the answer's states
        self._abort_on(lambda: self._waiting > 0)
        try:
            self._evaluate_batches(answer)
        except RuntimeError:  # llama.cpp aborted the batch: a generation is waiting
            log.debug("re-evaluating an answer on %s gave way to the next generation", self.model_id)
        finally:
            self._abort_on(None)

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep or restore the longest evaluated prefix of `tokens`, leaving at least two tokens to evaluate (one
        alone would get other logits); its length. The live context's prompt is saved first if it would be lost."""
        assert self._prompt_cache is not None
        limit = max(len(tokens) - 2, 0)
        live = min(common_prefix_length(self._llama.input_ids[: self._exact_tokens], tokens), limit)
        saved, from_cache = self._prompt_cache.longest_prefix(tokens)  # before saving: no eviction takes it now
        if live < self._exact_tokens:
            self._save_live_prompt()
        if saved is not None and min(from_cache, limit) > live and self._restore(saved.tokens, saved.state, saved.size):
            self._llama.n_tokens = min(from_cache, limit)  # the next eval drops what follows
            return self._llama.n_tokens
        self._llama.n_tokens = live
        return live

    def _save_live_prompt(self) -> None:
        """Put the live context's evaluated prompt into the prompt cache, unless a saved state holds it already."""
        assert self._prompt_cache is not None
        length = self._exact_tokens
        tokens = self._llama.input_ids[:length].copy()
        if self._prompt_cache.covers(tokens):
            return
        self._llama._ctx.kv_cache_seq_rm(_SEQUENCE, length, -1)  # the generated tokens are not reused
        self._llama.n_tokens = length
        ctx = self._llama._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, _SEQUENCE)
        state = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, state, size, _SEQUENCE)
        if written == size:
            self._prompt_cache.add(tokens, state, size)

    def _restore(self, tokens: Any, state: Any, size: int) -> bool:
        """Make a saved state the live context; False (and an empty context) where llama.cpp refuses it."""
        self._llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        self._llama.n_tokens = self._exact_tokens = 0
        if llama_cpp.llama_state_seq_set_data(self._llama._ctx.ctx, state, size, _SEQUENCE) != size:
            log.warning("the prompt cache's state of %d tokens could not be restored", len(tokens))
            return False
        self._llama.input_ids[: len(tokens)] = tokens
        self._llama.n_tokens = self._exact_tokens = len(tokens)
        return True

    def _abort_on(self, should_stop: Callable[[], bool] | None) -> None:
        """While a prompt is evaluated (seconds for a long one, and llama-cpp-python offers no hook before the
        first token), llama.cpp asks `_abort_requested` at every step of its compute graph whether to stop.
        Only then: the callback takes the GIL, hundreds of times per token."""
        self._should_stop = should_stop
        callback = self._abort_callback if should_stop is not None else llama_cpp.ggml_abort_callback()  # NULL
        llama_cpp.llama_set_abort_callback(self._llama._ctx.ctx, callback, None)

    def _abort_requested(self, _data: Any) -> bool:
        should_stop = self._should_stop
        return should_stop is not None and should_stop()

    async def _as_text(self, pieces: AsyncIterator[_Piece], prompt_tokens: int):
        finish: FinishReason = "stop"
        usage = Usage(prompt_tokens, 0)
        async for piece in pieces:
            if piece.text:
                yield Chunk(text=piece.text)
            finish, usage = piece.finish_reason or finish, _usage(prompt_tokens, piece)
        yield Chunk(finish_reason=finish, usage=usage)

    async def _as_tool_call_or_text(self, pieces: AsyncIterator[_Piece], prompt_tokens: int):
        """Text streams through; output that opens with "{" or "[" is a call, or an array of calls (the grammar saw
        to it), and is sent whole."""
        finish: FinishReason
        buffered, is_call, finish, usage = "", None, "stop", Usage(prompt_tokens, 0)
        async for piece in pieces:
            text = piece.text
            finish, usage = piece.finish_reason or finish, _usage(prompt_tokens, piece)
            if is_call is None and text:
                is_call = text.lstrip()[:1] in ("{", "[")
            if is_call:
                buffered += text
            elif text:
                yield Chunk(text=text)
        if is_call:
            try:
                parsed = json.loads(buffered)
            except json.JSONDecodeError:  # cut off by max_tokens: report it as text, as OpenAI does
                yield Chunk(text=buffered)
                yield Chunk(finish_reason="length", usage=usage)
                return
            calls = parsed if isinstance(parsed, list) else [parsed]
            yield Chunk(
                tool_calls=tuple(
                    ToolCallDelta(
                        index=index,
                        id=new_id("call"),
                        name=call["name"],
                        arguments=json.dumps(call["arguments"], ensure_ascii=False),
                    )
                    for index, call in enumerate(calls)
                )
            )
            finish = "tool_calls"
        yield Chunk(finish_reason=finish, usage=usage)

    async def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._llama.close()


def _usage(prompt_tokens: int, piece: _Piece) -> Usage:
    """The usage after `piece` (a reused BOS token the prompt count leaves out is not counted either)."""
    return Usage(prompt_tokens, piece.generated, min(piece.reused, prompt_tokens))


def _text_bytes(content: Any) -> int:
    """UTF-8 bytes of a message's text (its text parts, for a list of parts): a lower bound of what it renders."""
    if isinstance(content, str):
        return len(content.encode("utf-8", "surrogatepass"))
    if isinstance(content, list):
        return sum(_text_bytes(part.get("text")) for part in content if isinstance(part, dict))
    return 0
