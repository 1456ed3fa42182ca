"""File parsing for retrieval: every supported type round-trips known text; bad files fail with our two errors."""

from __future__ import annotations

import io
import json
import random
import time
import zipfile

import docx
import pytest
from fpdf import FPDF
from fpdf.enums import EncryptionMethod
from pypdf import PdfReader
from pypdf.errors import DependencyError

from assistd.retrieval import parsing
from assistd.retrieval.parsing import SUPPORTED_EXTENSIONS, InvalidFile, UnsupportedFile, extract_text

SENTENCE = "The quick brown fox jumps over the lazy dog."


def make_pdf(*pages: str, user_password: str | None = None, method: EncryptionMethod = EncryptionMethod.RC4) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 10, text)
    if user_password is not None:
        pdf.set_encryption(owner_password="owner-secret", user_password=user_password, encryption_method=method)
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Before the table.")
    table = document.add_table(rows=3, cols=3)
    rows = [["Name", "Role", "City"], ["Ada", "Engineer", "London"], ["Grace", "Admiral", "Arlington"]]
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    merged = document.add_table(rows=1, cols=3)
    merged.cell(0, 0).merge(merged.cell(0, 1)).text = "spans two columns"
    merged.cell(0, 2).text = "alone"
    document.add_paragraph(f"After the table. {SENTENCE}")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip(**members: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# -- what is supported -------------------------------------------------------------------------------------------


def test_supported_extensions_are_lowercase_with_a_dot() -> None:
    expected = {".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".json", ".csv", ".tsv", ".py", ".ts", ".pl"}
    assert expected <= SUPPORTED_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() and len(ext) > 1 for ext in SUPPORTED_EXTENSIONS)
    assert {".exe", ".doc", ".pptx", ".zip", ""}.isdisjoint(SUPPORTED_EXTENSIONS)


@pytest.mark.parametrize(
    ("filename", "named"),
    [("setup.exe", "'.exe'"), ("old.doc", "'.doc'"), ("slides.PPTX", "'.pptx'"), ("README", "no extension"),
     (".bashrc", "no extension"), ("trailing.", "no extension")],
)  # fmt: skip
def test_unsupported_extension(filename: str, named: str) -> None:
    with pytest.raises(UnsupportedFile) as caught:
        extract_text(filename, SENTENCE.encode())
    assert named in str(caught.value) and ".pdf" in str(caught.value)
    assert isinstance(caught.value, ValueError) and not isinstance(caught.value, InvalidFile)


def test_extension_is_case_insensitive_and_path_is_ignored() -> None:
    assert extract_text("NOTES.TXT", SENTENCE.encode()) == SENTENCE
    assert extract_text("C:\\Users\\me\\notes.v2.Md", SENTENCE.encode()) == SENTENCE
    assert extract_text("some/dir.pdf/notes.txt", SENTENCE.encode()) == SENTENCE


# -- plain text, markdown, code, decoding ------------------------------------------------------------------------


def test_markdown_unchanged() -> None:
    text = "# Title\n\n* one\n* two\n\n```python\nprint('hi')\n```\n\n<b>kept as is</b>\n"
    assert extract_text("doc.md", text.encode()) == text
    assert extract_text("doc.markdown", text.encode()) == text


def test_source_code_unchanged() -> None:
    code = 'def greet(name: str) -> str:\n    """Say hi."""\n\treturn f"hello {name}"  # naïve\n\n\n'
    assert extract_text("greet.py", code.encode()) == code
    assert extract_text("greet.rs", code.encode()) == code


def test_plain_text_and_newlines_normalised() -> None:
    assert extract_text("a.txt", b"one\r\ntwo\rthree\n") == "one\ntwo\nthree\n"
    assert extract_text("server.log", b"\x1b[31mERROR\x1b[0m disk full\n") == "\x1b[31mERROR\x1b[0m disk full\n"


def test_utf8_bom_is_dropped() -> None:
    assert extract_text("a.txt", b"\xef\xbb\xbf" + "Grüße".encode()) == "Grüße"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom(codec: str) -> None:
    text = "Grüße, 世界\r\nsecond line"
    data = ("\ufeff" + text).encode(codec) if codec != "utf-16" else text.encode(codec)
    assert extract_text("a.txt", data) == "Grüße, 世界\nsecond line"


def test_utf32_with_bom() -> None:
    assert extract_text("a.txt", "Grüße 世界".encode("utf-32")) == "Grüße 世界"


def test_cp1252_fallback() -> None:
    text = "Café \u2013 \u201cquoted\u201d costs €5, naïve façade"  # dash and quotes only cp1252 has
    data = text.encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert extract_text("a.txt", data) == text


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01\x02\x03" * 64, b"text\x00with a NUL", random_bytes(4096), bytes(range(1, 32)) * 20],
    ids=["nul-laden", "one-nul", "random", "control-characters"],
)
def test_binary_named_txt_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidFile, match="binary"):
        extract_text("a.txt", data)


def test_utf16_without_bom_is_binary() -> None:
    with pytest.raises(InvalidFile, match="NUL"):
        extract_text("a.txt", SENTENCE.encode("utf-16-le"))


def test_broken_utf16_after_bom_is_invalid() -> None:
    with pytest.raises(InvalidFile, match="UTF-16"):
        extract_text("a.txt", b"\xff\xfe" + b"a\x00\x00\xdc")  # a lone low surrogate


@pytest.mark.parametrize(
    ("filename", "data"),
    [("a.txt", b""), ("a.txt", b" \n\t\r\n  "), ("a.md", b"\xef\xbb\xbf  \n"), ("a.py", b""), ("a.json", b" \n"),
     ("a.csv", b",,\n ,\n"), ("a.html", b"<html><head><script>var x = 1;</script></head><body> </body></html>"),
     ("a.pdf", b""), ("a.docx", b"")],
)  # fmt: skip
def test_empty_or_whitespace_only_is_invalid(filename: str, data: bytes) -> None:
    with pytest.raises(InvalidFile, match="contains no text"):
        extract_text(filename, data)


# -- json --------------------------------------------------------------------------------------------------------


def test_json_pretty_printed_keeping_unicode() -> None:
    value = {"name": "Zoë", "tags": ["fox", "dog"], "nested": {"sentence": SENTENCE, "count": 3}}
    text = extract_text("data.json", json.dumps(value, separators=(",", ":")).encode())
    assert text == json.dumps(value, indent=2, ensure_ascii=False)
    assert '"name": "Zoë"' in text and '\n  "tags": [\n    "fox",' in text


@pytest.mark.parametrize("data", [b"{'single': 'quotes'}", b'{"a": 1,}', b"[1, 2", b"hello"])
def test_invalid_json(data: bytes) -> None:
    with pytest.raises(InvalidFile, match="not valid JSON"):
        extract_text("data.json", data)


def test_json_nested_too_deeply_is_invalid() -> None:
    with pytest.raises(InvalidFile, match="nested too deeply"):
        extract_text("deep.json", b"[" * 100_000 + b"]" * 100_000)


# -- csv, tsv ----------------------------------------------------------------------------------------------------


def test_csv_with_header_gives_labelled_rows() -> None:
    data = b'name,city,note\r\nAda,London,"likes, commas"\r\nGrace,,Admiral\r\n\r\n'
    expected = "name: Ada, city: London, note: likes, commas\nname: Grace, note: Admiral"
    assert extract_text("people.csv", data) == expected


def test_csv_without_header_gives_plain_rows() -> None:
    data = b"1,2.5,3\n4,5,six\n"
    assert extract_text("numbers.csv", data) == "1, 2.5, 3\n4, 5, six"


def test_csv_delimiter_is_sniffed() -> None:
    data = "produit;prix;ville\nCafé;3,50;Paris\nThé;2,80;Lyon\n".encode("cp1252")
    expected = "produit: Café, prix: 3,50, ville: Paris\nproduit: Thé, prix: 2,80, ville: Lyon"
    assert extract_text("prix.csv", data) == expected


def test_tsv_extra_cells_are_kept() -> None:
    data = b"key\tvalue\nfox\tquick\textra\n"
    assert extract_text("pairs.tsv", data) == "key: fox, value: quick, extra"


# -- html --------------------------------------------------------------------------------------------------------


def test_html_visible_text_with_breaks() -> None:
    html = """<!DOCTYPE html><html><head><title>Page title</title>
    <style>body { color: red; }</style><script>var secret = "do not index";</script></head>
    <body><h1>Heading</h1><p>First   paragraph with
    <b>bold</b> and &amp; an entity.</p><!-- a comment -->
    <ul><li>one</li><li>two</li></ul>
    <table><tr><th>Name</th><td>Ada</td></tr></table>
    <noscript>enable javascript</noscript><p>line<br>break</p><pre>  indented
  code</pre></body></html>"""
    text = extract_text("page.html", html.encode())
    assert text == (
        "Page title\n\nHeading\n\nFirst paragraph with bold and & an entity.\n\none\ntwo\n\nName\nAda\n\n"
        "line\nbreak\n\n  indented\n  code"
    )
    assert "secret" not in text and "color" not in text and "comment" not in text and "javascript" not in text


def test_html_declared_charset_is_honoured() -> None:
    html = '<html><head><meta charset="iso-8859-15"></head><body><p>Prix : 5 €</p></body></html>'
    assert extract_text("page.HTM", html.encode("iso-8859-15")) == "Prix : 5 €"


# -- pdf ---------------------------------------------------------------------------------------------------------


def test_pdf_pages_separated_by_a_blank_line() -> None:
    text = extract_text("report.pdf", make_pdf(f"Page one. {SENTENCE}", "Page two says goodbye."))
    assert text == f"Page one. {SENTENCE}\n\nPage two says goodbye."


@pytest.mark.parametrize("method", [EncryptionMethod.RC4, EncryptionMethod.AES_128, EncryptionMethod.AES_256])
def test_pdf_empty_user_password_is_opened(method: EncryptionMethod) -> None:
    data = make_pdf(SENTENCE, user_password="", method=method)
    assert PdfReader(io.BytesIO(data)).is_encrypted
    assert extract_text("locked.pdf", data) == SENTENCE


def test_pdf_encryption_we_cannot_handle_is_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing_dependency(self: PdfReader, password: str) -> None:
        raise DependencyError("cryptography is required for AES algorithm")

    monkeypatch.setattr(PdfReader, "decrypt", missing_dependency)
    with pytest.raises(InvalidFile, match="encrypted in a way this server cannot open"):
        extract_text("locked.pdf", make_pdf(SENTENCE, user_password="", method=EncryptionMethod.AES_256))


def test_pdf_needing_a_password_is_invalid() -> None:
    with pytest.raises(InvalidFile, match="password-protected"):
        extract_text("locked.pdf", make_pdf(SENTENCE, user_password="secret"))


def test_pdf_without_text_is_invalid() -> None:
    with pytest.raises(InvalidFile, match="contains no text"):
        extract_text("scan.pdf", make_pdf(""))


@pytest.mark.parametrize(
    "data",
    [random_bytes(4096), b"%PDF-1.7\n" + random_bytes(2048, seed=1), b"not a pdf at all", make_pdf(SENTENCE)[:300]],
    ids=["random", "pdf-header-then-garbage", "text", "truncated"],
)
def test_corrupt_pdf_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidFile, match="not a readable PDF") as caught:
        extract_text("broken.pdf", data)
    assert caught.value.__cause__ is not None  # the library's error is chained, not raised


# -- docx --------------------------------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables_in_document_order() -> None:
    assert extract_text("report.docx", make_docx()) == (
        "Quarterly report\nBefore the table.\nName | Role | City\nAda | Engineer | London\n"
        f"Grace | Admiral | Arlington\nspans two columns | alone\nAfter the table. {SENTENCE}"
    )


@pytest.mark.parametrize(
    "data",
    [make_zip(**{"hello.txt": "just a zip"}), make_zip(**{"[Content_Types].xml": "<broken"}), random_bytes(4096),
     make_docx()[:500]],
    ids=["zip-not-docx", "broken-package", "random", "truncated"],
)  # fmt: skip
def test_corrupt_docx_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidFile, match=r"not a readable Word document") as caught:
        extract_text("report.docx", data)
    assert caught.value.__cause__ is not None


# -- size caps ---------------------------------------------------------------------------------------------------


def test_text_over_the_cap_is_invalid() -> None:
    assert extract_text("a.txt", b"x" * 100, max_chars=100) == "x" * 100
    with pytest.raises(InvalidFile, match="more than 100 characters"):
        extract_text("a.txt", b"x" * 101, max_chars=100)


def test_json_expanding_past_the_cap_is_invalid() -> None:
    data = b"[" * 40 + b"1" + b"]" * 40  # 81 bytes that pretty-print to over 3000 characters
    with pytest.raises(InvalidFile, match="more than 1,000 characters"):
        extract_text("deep.json", data, max_chars=1000)


def test_pdf_past_the_cap_is_invalid() -> None:
    with pytest.raises(InvalidFile, match="more than 30 characters"):
        extract_text("long.pdf", make_pdf("short first page", "and a second page that passes the cap"), max_chars=30)


def _no_docx_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("python-docx was asked to read a refused document")

    monkeypatch.setattr(parsing.docx, "Document", refuse)


def test_docx_declaring_too_much_xml_is_refused_before_decompressing(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_docx_parsing(monkeypatch)
    bomb = make_zip(**{"word/document.xml": " " * 5_000_000})  # 4 MiB allowance + 32 bytes for each of 1,000 characters
    assert len(bomb) < 20_000
    with pytest.raises(InvalidFile, match=r"XML decompresses to more than 4\.0 MiB, more than 1,000 characters"):
        extract_text("bomb.docx", bomb, max_chars=1000)


def test_docx_declaring_too_large_images_is_refused_before_decompressing(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_docx_parsing(monkeypatch)
    bomb = make_zip(**{"word/document.xml": "<w:document/>", "word/media/image1.bmp": "\0" * 20_000_000})
    assert len(bomb) < 40_000
    with pytest.raises(InvalidFile, match=r"images and other parts decompress to more than 16\.\d MiB"):
        extract_text("bomb.docx", bomb)


def test_docx_bomb_stops_at_the_cap() -> None:
    """A small .docx whose one paragraph is 3 million characters (the XML is within what 500,000 characters of
    text may take, so it is parsed): refused at the character cap, in well under a second."""
    document = docx.Document()
    document.add_paragraph("a" * 3_000_000)
    buffer = io.BytesIO()
    document.save(buffer)
    assert len(buffer.getvalue()) < 100_000
    started = time.monotonic()
    with pytest.raises(InvalidFile, match="more than 500,000 characters"):
        extract_text("bomb.docx", buffer.getvalue(), max_chars=500_000)
    assert time.monotonic() - started < 5


def test_html_counts_visible_text_and_stops_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    markup = '<div class="wrapper"><span style="color: red"></span></div>' * 200
    assert extract_text("page.html", f"<p>{markup}visible</p>".encode(), max_chars=1000) == "visible"
    fed: list[int] = []
    feed = parsing._VisibleText.feed
    monkeypatch.setattr(parsing._VisibleText, "feed", lambda self, data: fed.append(len(data)) or feed(self, data))
    monkeypatch.setattr(parsing, "_HTML_FEED_CHARS", 1000)
    page = ("<p>" + "word " * 10_000 + "</p>").encode()  # 50,007 bytes: within 16 bytes a character
    with pytest.raises(InvalidFile, match="more than 5,000 characters"):
        extract_text("page.html", page, max_chars=5000)
    assert len(fed) == 6, "parsing stopped at the piece that passed the cap (of 51)"
    with pytest.raises(InvalidFile, match="larger than 1,600 bytes, more than 100 characters"):
        extract_text("page.html", f"<p>{markup}visible</p>".encode(), max_chars=100)


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("long.pdf", make_pdf("one", "two", "three")),
        ("report.docx", make_docx()),
        ("page.html", b"<p>text</p>"),
        ("rows.csv", b"a,b\n1,2\n"),
    ],
)
def test_extraction_past_its_deadline_gives_up(filename: str, data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller that stopped waiting leaves no thread reading page after page."""
    pages: list[str] = []
    clean = parsing._clean_extracted
    monkeypatch.setattr(parsing, "_clean_extracted", lambda text: pages.append(text) or clean(text))
    with pytest.raises(parsing.ExtractionTimeout):
        extract_text(filename, data, deadline=time.monotonic() - 1)
    assert pages == []


@pytest.mark.parametrize(
    "charset", ["undefined", "unicode_escape", "utf-7", "utf-16", "utf-32", "cp037", "hex", "zlib", "no-such-charset"]
)
def test_an_html_charset_that_cannot_be_the_files_falls_back(charset) -> None:
    """A declared codec that is no ASCII-compatible character set is ignored: the page still reads, as text that
    can be stored (no escapes interpreted, no surrogates, no server error)."""
    page = f'<html><head><meta charset="{charset}"></head><body><p>Caf\xe9 at \\udfff +ADw- noon</p></body></html>'
    text = extract_text("page.html", page.encode("latin-1"))
    assert text == "Caf\xe9 at \\udfff +ADw- noon"


def test_an_html_charset_that_is_the_files_is_used() -> None:
    page = '<html><head><meta charset="koi8-r"></head><body><p>Привет</p></body></html>'
    assert extract_text("page.html", page.encode("koi8-r")) == "Привет"
