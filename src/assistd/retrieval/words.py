"""Words of a text for matching: lowercase letters-and-digits runs, without the commonest English words."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOPWORD_TEXT = """
a an and are as at be but by can could did do does for from had has have how i if in into is it its me my no not
of on or our so than that the their them then there these they this to was we were what when where which who why
will with would you your also all any about out
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def words(text: str) -> list[str]:
    """Every word of `text`, lowercased, in order."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """The words of `text` that carry meaning (no stopwords), in order, without repeats."""
    return list(dict.fromkeys(word for word in words(text) if word not in STOPWORDS))
