"""The ready-made assistants: what `assistd apps install NAME` creates (instructions, tools, settings).

A preset is a configured assistant: it runs through the same runs, file_search and streaming as any other, so
every client (the SDK, the CLI, curl) gets the same behaviour. Its assistant names the preset in the extension
field `app`, which runs copy when they are created and which selects how they generate (apps/strategies.py);
`metadata["assistd_app"]` names it too, so that clients find the assistants they installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

APP_KEY = "assistd_app"

HANDOFF_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "handoff_to_human",
        "description": "Pass the conversation to a human agent, when the customer asks for a person.",
        "parameters": {
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why the customer needs a person."}},
            "required": ["reason"],
        },
    },
}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    instructions: str
    tools: list[dict[str, Any]] = field(default_factory=list)
    temperature: float | None = None
    needs_vector_store: bool = False
    # longest answer when the run sets no max_completion_tokens: small models tend to ramble on past the answer
    answer_tokens: int | None = None

    def assistant_body(self, model: str, name: str | None = None) -> dict[str, Any]:
        """The body of `POST /v1/assistants` that installs this preset."""
        return {
            "model": model,
            "name": name or self.name,
            "description": self.description,
            "instructions": self.instructions,
            "tools": self.tools,
            "temperature": self.temperature,
            "metadata": {APP_KEY: self.name},
            "app": self.name,
        }


CUSTOMER_SERVICE = Preset(
    name="customer-service",
    description="Answers customers from its knowledge base with citations; hands off to a person on request.",
    instructions=(
        "You are a customer-service assistant. Answer only from the excerpts of the knowledge base that you are "
        "given, briefly and politely, in your own words but keeping names, numbers and codes exactly. If the "
        "excerpts do not answer the question, say that the knowledge base has no answer to it and offer to put "
        "the customer in touch with a person; never guess. If the question is unclear, ask one short clarifying "
        "question. If the customer asks to speak to a person, call handoff_to_human."
    ),
    tools=[{"type": "file_search", "file_search": {"max_num_results": 5}}, HANDOFF_TOOL],
    temperature=0.0,
    needs_vector_store=True,
    answer_tokens=256,
)

SUMMARIZER = Preset(
    name="summarizer",
    description="Summarises the text it is given: bullets, a paragraph, a TL;DR or key points as JSON.",
    instructions=(
        "You summarise the text the user gives you. Keep to what the text says: add no facts, opinions or advice. "
        "Unless told otherwise, write one short paragraph."
    ),
    temperature=0.0,
)

TRANSLATOR = Preset(
    name="translator",
    description="Translates the text it is given into the run's response language, keeping formatting intact.",
    instructions=(
        "You translate the text the user gives you. Detect its language yourself. Write only the translation: no "
        "notes, no explanations, no quotes around it. Keep the markdown formatting, code, URLs and placeholders "
        "such as {name}, %s or {{count}} exactly as they are."
    ),
    temperature=0.0,
)

PRESETS = {preset.name: preset for preset in (CUSTOMER_SERVICE, SUMMARIZER, TRANSLATOR)}

SUMMARY_STYLES = {
    "paragraph": "Write the summary as one paragraph.",
    "bullets": "Write the summary as a bulleted list of the main points, one line each, starting with '- '.",
    "tldr": "Write the summary as a single sentence that starts with 'TL;DR:'.",
    "key-points": "Give the key points of the text and a one-sentence summary, as JSON.",
}

KEY_POINTS_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "key_points",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "summary": {"type": "string"},
                "key_points": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 8},
            },
            "required": ["summary", "key_points"],
            "additionalProperties": False,
        },
    },
}


SUMMARY_TOKENS_PER_WORD = 3  # room enough for any language; a model that rambles is cut off, not waited for
DEFAULT_SUMMARY_TOKENS = 600
KEY_POINTS_TOKENS = 1200


def summary_run_options(style: str = "paragraph", words: int | None = None) -> dict[str, Any]:
    """Run parameters for a summary style: additional_instructions, a max_completion_tokens bound from the target
    length, and response_format for key points."""
    if style not in SUMMARY_STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(SUMMARY_STYLES)}")
    instructions = SUMMARY_STYLES[style]
    if words:
        instructions += f" Use at most {words} words."
    options: dict[str, Any] = {
        "additional_instructions": instructions,
        "max_completion_tokens": max(64, SUMMARY_TOKENS_PER_WORD * words) if words else DEFAULT_SUMMARY_TOKENS,
    }
    if style == "key-points":  # JSON cut short is no JSON: leave room for its syntax and every point
        options["max_completion_tokens"] = max(options["max_completion_tokens"], KEY_POINTS_TOKENS)
    if style == "key-points":
        options["response_format"] = KEY_POINTS_FORMAT
    return options


def translation_run_options(target: str, glossary: dict[str, str] | None = None) -> dict[str, Any]:
    """Run parameters for a translation into `target` (a language code or name), with fixed terms if given."""
    options: dict[str, Any] = {"response_language": target}
    if glossary:
        terms = "; ".join(f"{source} → {fixed}" for source, fixed in glossary.items())
        options["additional_instructions"] = f"Always translate these terms exactly so: {terms}."
    return options
