"""File parsing for retrieval: an uploaded file's bytes in, plain text out (chunking and embedding happen elsewhere).

The reader is chosen by the file name's extension, case-insensitively. Two errors, both `ValueError`s whose message
is short and fit to show a user: `UnsupportedFile` (an extension we do not read: vector store file `last_error`
code `unsupported_file`) and `InvalidFile` (a supported type that cannot be read or holds no text: `invalid_file`).
No exception of a third-party parser escapes; the original one is chained as `__cause__` for the logs.

Choices worth knowing:

- Text (plain, markdown, source code, and the text under html, json and csv) is decoded as UTF-8 (a BOM is
  dropped), or UTF-16/UTF-32 when their BOM is present; bytes that are not UTF-8 fall back to cp1252 (latin-1
  for the five bytes cp1252 leaves undefined) when they hold no NUL byte and almost no control characters.
  Anything else is binary and invalid. Newlines become "\\n"; plain text, markdown and code are otherwise returned
  unchanged.
- CSV/TSV: when the first row looks like a header (every cell non-empty, distinct and not a number), each later
  row becomes `header: value` pairs joined by ", " (empty cells left out), so that a chunk cut from the middle of
  a long table still says which column each value belongs to; otherwise each row is its cells joined by ", ".
  The delimiter of a .csv is sniffed among `,` `;` tab and `|` (`,` when unclear); a .tsv uses tabs.
- HTML: visible text only (no script, style, template or noscript), entities decoded, whitespace collapsed as a
  browser would (kept inside <pre>), a line break after block elements (table cells included) and a blank line
  around paragraphs, headings, lists and tables.
- PDF: the text of every page, pages separated by a blank line; a PDF encrypted with an empty user password (a
  permissions-only lock) is opened, one that needs a password is invalid. Scanned pages (images) have no text.
- DOCX: body paragraphs and tables in document order, one line per paragraph and per table row (cells joined by
  " | ", nested tables flattened into their cell). Headers, footers, footnotes, comments and text boxes are not read.
- Bombs: extracted text is capped at `max_chars` characters (`MAX_TEXT_CHARS` unless the caller says), and
  extraction stops as soon as the text passes it (HTML is read in pieces; PDF pages, JSON, CSV and .docx lines are
  counted as they come) rather than building the whole text first. A .docx is refused before anything is
  decompressed when the uncompressed sizes its zip declares are out of proportion (zipfile never inflates past a
  member's declared size): its XML parts may hold `DOCX_XML_BYTES_PER_CHAR` bytes per character of the cap (plus
  `DOCX_XML_ALLOWANCE` for styles and the like), its other parts (images) may expand `DOCX_MEDIA_EXPANSION` times
  over the file's own size (plus `DOCX_MEDIA_ALLOWANCE`). An HTML page may be `HTML_MARKUP_PER_CHAR` bytes per
  character of the cap. pypdf caps each decompressed PDF stream itself. Beyond a cap the file is invalid.
- Time: given a `deadline`, extraction gives up (ExtractionTimeout) between PDF pages, lines and pieces of HTML
  once it has passed, so that a caller that stopped waiting does not leave a thread busy for long.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Protocol

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

MAX_TEXT_CHARS = 50_000_000
# python-docx reads 0.4 (tables) to 1.2 (prose) MB of document.xml a second and holds ~12x its size meanwhile;
# prose takes ~12 bytes of XML per character of text, a table of short cells ~27
DOCX_XML_BYTES_PER_CHAR = 32
DOCX_XML_ALLOWANCE = 4 * 1024 * 1024
DOCX_MEDIA_EXPANSION = 8
DOCX_MEDIA_ALLOWANCE = 16 * 1024 * 1024
HTML_MARKUP_PER_CHAR = 16
_HTML_FEED_CHARS = 1 << 20


class UnsupportedFile(ValueError):
    """The file's type is not one we can read (→ vector store file last_error code `unsupported_file`)."""


class InvalidFile(ValueError):
    """The file claims a supported type but cannot be read, or holds no text (→ `invalid_file`)."""


class ExtractionTimeout(TimeoutError):
    """Extraction passed the caller's deadline."""


@dataclass(frozen=True)
class _Budget:
    chars: int  # the most characters of text
    deadline: float | None  # time.monotonic() by which extraction gives up

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ExtractionTimeout("extraction passed its deadline")


_PLAIN = frozenset({".txt", ".text", ".log", ".md", ".markdown"})
_CODE = frozenset(
    {
        ".py", ".js", ".ts", ".java", ".c", ".cpp", ".h", ".hpp", ".cs", ".go", ".rs", ".rb", ".php", ".sh",
        ".css", ".tex", ".xml", ".yaml", ".yml", ".toml", ".ini", ".sql", ".kt", ".swift", ".scala", ".r",
        ".lua", ".pl",
    }
)  # fmt: skip

# control characters that do not occur in text: C0 except \t \n \v \f \r and ESC (ANSI colours in logs), DEL, C1
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_MAX_CONTROL_SHARE_UNICODE = 0.10  # decoded as UTF-8/16/32: only a file full of control characters is binary
_MAX_CONTROL_SHARE_FALLBACK = 0.02  # guessed cp1252/latin-1: real text has next to none
_DROP_FROM_EXTRACTED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # control characters in pdf/docx text
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")
_NOT_CHARSETS = {"undefined", "unicode-escape", "raw-unicode-escape", "punycode", "idna", "utf-7"}
_ASCII_PROBE = "<meta charset=html> Az09"
_SURROGATE = re.compile("[\ud800-\udfff]")  # no character: text holding one cannot be stored
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?%?")


def _too_long(limit: int) -> InvalidFile:
    return InvalidFile(f"the file holds more than {limit:,} characters of text, the most read from one file")


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _checked(text: str, max_control_share: float, limit: int) -> str:
    """Decoded text with newlines normalised, or InvalidFile when it is too long or looks binary."""
    if len(text) > limit:
        raise _too_long(limit)
    if "\x00" in text:
        raise InvalidFile("the file looks binary, not text (it contains NUL bytes)")
    if text and len(_CONTROL.findall(text)) > max_control_share * len(text):
        raise InvalidFile("the file looks binary, not text (it is full of control characters)")
    return _normalise_newlines(text)


def _decode_text(data: bytes, limit: int, declared: str | None = None) -> str:
    """Bytes to text (see the module docstring), newlines normalised; InvalidFile for binary data or more than
    `limit` characters."""
    if len(data) > 4 * limit:
        raise _too_long(limit)
    boms = (
        (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
        (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),  # before UTF-16: its BOM starts like UTF-16 LE's
        (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
        (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
        (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
    )
    for bom, codec, label in boms:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                if label == "UTF-32":  # FF FE 00 00 may also be UTF-16 LE starting with U+0000
                    continue
                raise InvalidFile(f"the file starts with a {label} byte-order mark but is not valid {label}") from exc
            return _checked(text, _MAX_CONTROL_SHARE_UNICODE, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return _checked(text, _MAX_CONTROL_SHARE_UNICODE, limit)
    if b"\x00" in data:
        raise InvalidFile("the file looks binary, not text (it contains NUL bytes)")
    text = ""
    for fallback in (_charset(declared), "cp1252", "latin-1"):
        if fallback is None:
            continue
        try:
            text = data.decode(fallback)
        except UnicodeError:  # UnicodeDecodeError, and the plain UnicodeError of codecs such as "undefined"
            continue
        if not _SURROGATE.search(text):
            break
    return _checked(text, _MAX_CONTROL_SHARE_FALLBACK, limit)


def _charset(declared: str | None) -> str | None:
    """The codec a file declares, if it can be the file's: a character set that writes ASCII as ASCII (the
    declaration itself was read as ASCII, so UTF-16 or EBCDIC cannot be true), not a codec that reads escapes
    (unicode_escape, punycode, utf-7), transforms bytes (hex, zlib) or always fails (undefined); else None."""
    if declared is None:
        return None
    try:
        codec = codecs.lookup(declared)
        if not getattr(codec, "_is_text_encoding", True) or codec.name in _NOT_CHARSETS:
            return None
        if codec.encode(_ASCII_PROBE)[0] != _ASCII_PROBE.encode("ascii"):
            return None
    except (LookupError, UnicodeError):
        return None
    return codec.name


def _clean_extracted(text: str) -> str:
    """Text from a pdf or docx: newlines normalised, stray control characters dropped, blank runs collapsed."""
    text = _DROP_FROM_EXTRACTED.sub("", _normalise_newlines(text))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _join_capped(pieces: Iterable[str], separator: str, budget: _Budget) -> str:
    """Join pieces, raising InvalidFile as soon as the result would pass the budget's characters (and
    ExtractionTimeout once its deadline has passed)."""
    kept: list[str] = []
    size = 0
    for piece in pieces:
        budget.check_time()
        size += len(piece) + len(separator)
        if size > budget.chars + len(separator):
            raise _too_long(budget.chars)
        kept.append(piece)
    return separator.join(kept)


# -- plain text, markdown, source code ---------------------------------------------------------------------------


def _read_plain(data: bytes, budget: _Budget) -> str:
    return _decode_text(data, budget.chars)


# -- json --------------------------------------------------------------------------------------------------------


def _read_json(data: bytes, budget: _Budget) -> str:
    text = _decode_text(data, budget.chars)
    if not text.strip():
        raise InvalidFile("the file contains no text")
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise InvalidFile("the JSON is nested too deeply to read") from exc
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python will convert
        raise InvalidFile(f"the file is not valid JSON: {exc}") from exc
    try:
        return _join_capped(json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(value), "", budget)
    except RecursionError as exc:
        raise InvalidFile("the JSON is nested too deeply to read") from exc


# -- csv, tsv ----------------------------------------------------------------------------------------------------


def _sniff_delimiter(text: str) -> str:
    sample = text[:65536]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _looks_like_header(row: list[str]) -> bool:
    return all(row) and len(set(row)) == len(row) and not any(_NUMBER.fullmatch(cell) for cell in row)


def _csv_lines(rows: list[list[str]]) -> Iterator[str]:
    if len(rows) < 2 or not _looks_like_header(rows[0]):
        for row in rows:
            yield ", ".join(row)
        return
    header = rows[0]
    for row in rows[1:]:
        pairs = [f"{name}: {value}" for name, value in zip(header, row, strict=False) if value]
        yield ", ".join(pairs + [value for value in row[len(header) :] if value])


def _read_csv(data: bytes, budget: _Budget, delimiter: str | None = None) -> str:
    text = _decode_text(data, budget.chars)
    try:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter or _sniff_delimiter(text))
        rows = [cells for cells in ([cell.strip() for cell in row] for row in reader) if any(cells)]
    except csv.Error as exc:  # e.g. a field longer than the csv module's limit
        raise InvalidFile(f"the file is not readable CSV: {exc}") from exc
    return _join_capped(_csv_lines(rows), "\n", budget)


def _read_tsv(data: bytes, budget: _Budget) -> str:
    return _read_csv(data, budget, delimiter="\t")


# -- html --------------------------------------------------------------------------------------------------------

_HTML_HIDDEN = frozenset({"script", "style", "template", "noscript"})
_HTML_BLOCKS = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "section",
        "article", "header", "footer", "nav", "aside", "main", "figure", "form", "fieldset", "address",
        "details", "hr", "title",
    }
)  # fmt: skip
_HTML_LINES = frozenset(
    {"br", "div", "li", "dt", "dd", "tr", "td", "th", "caption", "figcaption", "summary", "option", "legend"}
)
_WHITESPACE = re.compile(r"\s+")


class _VisibleText(HTMLParser):
    """Collects the text a browser would show, with line breaks at block boundaries."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0  # characters in parts
        self._hidden = 0
        self._pre = 0
        self._newlines = 1  # how many newlines end the text so far (the start counts as a line start)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_HIDDEN:
            self._hidden += 1
        elif tag == "pre":
            self._pre += 1
        self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._break(tag)  # <br/>, <hr/>; a self-closed <script/> has no content to hide

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if not self._pre:
            data = _WHITESPACE.sub(" ", data)
            if self._newlines:
                data = data.lstrip(" ")
        if data:
            self.parts.append(data)
            self.size += len(data)
            stripped = data.rstrip("\n")
            self._newlines = len(data) - len(stripped) + (self._newlines if not stripped else 0)

    def _break(self, tag: str) -> None:
        """End the line (a blank line after a block) unless the text already ends so; breaks do not pile up."""
        wanted = 2 if tag in _HTML_BLOCKS else 1 if tag in _HTML_LINES else 0
        if self._newlines < wanted:
            self.parts.append("\n" * (wanted - self._newlines))
            self.size += wanted - self._newlines
            self._newlines = wanted


def _read_html(data: bytes, budget: _Budget) -> str:
    limit = budget.chars
    markup = HTML_MARKUP_PER_CHAR * limit
    if len(data) > markup:
        raise InvalidFile(f"the page is larger than {markup:,} bytes, more than {limit:,} characters of text can take")
    declared = _META_CHARSET.search(data[:4096])
    text = _decode_text(data, markup, declared.group(1).decode("ascii") if declared else None)
    parser = _VisibleText()
    try:
        for start in range(0, len(text), _HTML_FEED_CHARS):
            budget.check_time()
            parser.feed(text[start : start + _HTML_FEED_CHARS])
            if parser.size > limit:
                break
        parser.close()
    except ExtractionTimeout:
        raise
    except Exception as exc:  # the stdlib parser is lenient; this is a guard, not an expected path
        raise InvalidFile("the file is not readable HTML") from exc
    if parser.size > limit:
        raise _too_long(limit)
    lines = "".join(parser.parts).split("\n")
    return _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in lines)).strip()


# -- pdf ---------------------------------------------------------------------------------------------------------


def _pdf_pages(reader: PdfReader, budget: _Budget) -> Iterator[str]:
    """The text of each page that has some, checking the deadline before each page (empty ones too)."""
    for page in reader.pages:
        budget.check_time()
        text = _clean_extracted(page.extract_text() or "")
        if text:
            yield text


def _read_pdf(data: bytes, budget: _Budget) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise InvalidFile("the PDF is password-protected")
        return _join_capped(_pdf_pages(reader, budget), "\n\n", budget)
    except (InvalidFile, ExtractionTimeout):
        raise
    except DependencyError as exc:
        raise InvalidFile("the PDF is encrypted in a way this server cannot open") from exc
    except Exception as exc:
        raise InvalidFile("the file is not a readable PDF") from exc


# -- docx --------------------------------------------------------------------------------------------------------


class _BlockContainer(Protocol):
    def iter_inner_content(self) -> Iterator[Paragraph | Table]: ...


def _docx_lines(container: _BlockContainer) -> Iterator[str]:
    """One line per paragraph and per table row of a document body or table cell, in document order."""
    for item in container.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells: list[str] = []
                previous = None
                for cell in row.cells:
                    if cell is previous:  # a horizontally merged cell is listed once per grid column it spans
                        continue
                    previous = cell
                    text = " ".join(line.strip() for line in _docx_lines(cell) if line.strip())
                    if text:
                        cells.append(text)
                yield " | ".join(cells)
        else:
            yield item.text


def _check_docx_sizes(data: bytes, limit: int) -> None:
    """Refuse a .docx whose declared uncompressed parts are out of proportion to `limit` characters of text (its
    XML) or to its own size (images and other parts), before python-docx inflates them all into memory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except Exception as exc:
        raise InvalidFile("the file is not a readable Word document (.docx)") from exc
    xml = sum(info.file_size for info in members if info.filename.endswith((".xml", ".rels")))
    other = sum(info.file_size for info in members) - xml
    xml_cap = DOCX_XML_ALLOWANCE + DOCX_XML_BYTES_PER_CHAR * limit
    if xml > xml_cap:
        raise InvalidFile(
            f"the document's XML decompresses to more than {xml_cap / 2**20:,.1f} MiB, more than {limit:,} "
            "characters of text can take"
        )
    other_cap = DOCX_MEDIA_ALLOWANCE + DOCX_MEDIA_EXPANSION * len(data)
    if other > other_cap:
        raise InvalidFile(f"the document's images and other parts decompress to more than {other_cap / 2**20:,.1f} MiB")


def _read_docx(data: bytes, budget: _Budget) -> str:
    _check_docx_sizes(data, budget.chars)
    try:
        document = docx.Document(io.BytesIO(data))
        return _clean_extracted(_join_capped(_docx_lines(document), "\n", budget))
    except (InvalidFile, ExtractionTimeout):
        raise
    except Exception as exc:
        raise InvalidFile("the file is not a readable Word document (.docx)") from exc


# -- dispatch ----------------------------------------------------------------------------------------------------

_READERS: dict[str, Callable[[bytes, _Budget], str]] = {
    **dict.fromkeys(_PLAIN | _CODE, _read_plain),
    ".json": _read_json,
    ".csv": _read_csv,
    ".tsv": _read_tsv,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
}

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_READERS)


def _extension(filename: str) -> str:
    name = filename.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = name.rpartition(".")
    return f".{extension.lower()}" if dot and stem.strip(".") and extension else ""


def extract_text(filename: str, data: bytes, max_chars: int = MAX_TEXT_CHARS, deadline: float | None = None) -> str:
    """The plain text of an uploaded file, read according to the extension of `filename`.

    Raises UnsupportedFile for an extension not in SUPPORTED_EXTENSIONS (or none), InvalidFile for a file that
    cannot be read as its extension says, that holds no text, or whose text passes `max_chars`, and
    ExtractionTimeout once `deadline` (a time.monotonic() value) has passed."""
    extension = _extension(filename)
    reader = _READERS.get(extension)
    if reader is None:
        what = f"the extension '{extension}'" if extension else "no extension"
        supported = " ".join(sorted(SUPPORTED_EXTENSIONS))
        raise UnsupportedFile(f"files with {what} are not supported for retrieval (supported: {supported})")
    text = reader(data, _Budget(max_chars, deadline)) if data else ""
    if not text.strip():
        raise InvalidFile("the file contains no text")
    if len(text) > max_chars:
        raise _too_long(max_chars)
    return text
