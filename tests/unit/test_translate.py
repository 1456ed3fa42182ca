"""The translator's guard: what never goes to the model, and what is put back."""

from __future__ import annotations

from assistd.apps.translate import pieces, restore


def test_code_blocks_and_blank_lines_are_copied_whole() -> None:
    text = "Intro line.\n\n```sh\necho {x} %s\n```\nAfter.\n"
    parts = pieces(text)
    assert "".join(prefix + words + suffix for prefix, words, suffix in parts) == text
    assert [words for _, words, _ in parts] == ["Intro line.", "", "", "", "", "After."]


def test_markdown_prefixes_are_copied_and_only_words_are_translated() -> None:
    parts = pieces("## Heading\n- item\n1. first\n> quoted text\n   \n42\n")
    assert [(p, w) for p, w, _ in parts] == [
        ("## ", "Heading"),
        ("- ", "item"),
        ("1. ", "first"),
        ("> ", "quoted text"),
        ("   \n", ""),
        ("42\n", ""),
    ]


def test_restore_puts_back_what_the_model_dropped() -> None:
    source = "Hi {name}, see `code` at https://a.example/x and %(count)s items, {{total}}%s"
    assert restore(source, "Salut") == "Salut {name} `code` https://a.example/x %(count)s {{total}} %s"
    kept = "Salut {name}, voir `code` à https://a.example/x, %(count)s, {{total}} %s"
    assert restore(source, kept) == kept
    assert restore("plain", "  simple \n text ") == "simple text"
