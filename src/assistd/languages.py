"""Response languages: the assistd extension field `response_language` on assistants and runs.

A language is given as an ISO 639-1 code (`fr`, `pt-BR`) or a name (`French`); the model is told the name.
"""

from __future__ import annotations

import re

NAMES = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sr": "Serbian",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
_VALID = re.compile(r"[A-Za-z][A-Za-z ()-]{0,63}")


def is_valid(value: str) -> bool:
    """Letters, spaces, hyphens and brackets, 1 to 64 characters ("fr", "pt-BR", "Brazilian Portuguese")."""
    return _VALID.fullmatch(value) is not None


def language_name(value: str) -> str:
    """The language's English name: `fr` → French, `pt-BR` → Portuguese (BR); a name is kept as given."""
    code, _, region = value.partition("-")
    name = NAMES.get(code.lower())
    if name is None:
        return value
    return f"{name} ({region.upper()})" if region else name


def instruction(value: str) -> str:
    """The sentence added to a run's instructions."""
    return f"Always write your answers in {language_name(value)}, whatever the language of the question."
