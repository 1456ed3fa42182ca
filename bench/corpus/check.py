"""Checks the retrieval benchmark's question set (questions.jsonl) against its corpus (docs/).

Every line of questions.jsonl is {"question", "kind", "answer_file", "answer"}. For each line:

- answer_file is a file in docs/, and `answer` occurs in it exactly as written (raw text, markup included);
- `answer` occurs in no other file, ignoring case, so the answer file is the only right retrieval result;
- `kind` is "keyword", "paraphrase" or "mixed", and the label holds: a keyword question shares at least one rare
  term with its answer file, a paraphrase question shares none. A rare term is a word (lower-cased, crudely
  stemmed: "refunds" and "refund" are one term) that occurs in at most RARE_FILE_COUNT files of the corpus.
  Mixed questions may share rare terms or not.

The set as a whole must hold at least MIN_QUESTIONS distinct questions, each kind at least MIN_KIND_SHARE of them.

Usage: python bench/corpus/check.py   (exit status 0 when every check passes, 1 otherwise, listing each failure)
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

CORPUS = Path(__file__).resolve().parent
DOCS = CORPUS / "docs"
QUESTIONS = CORPUS / "questions.jsonl"
KINDS = ("keyword", "paraphrase", "mixed")
FIELDS = {"question", "kind", "answer_file", "answer"}
RARE_FILE_COUNT = 3
MIN_QUESTIONS = 120
MIN_KIND_SHARE = 0.3
SUFFIXES = ("ing", "ed", "s")


def stem(word: str) -> str:
    """`word` without one common English suffix, if at least three letters remain."""
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> set[str]:
    """The stemmed lower-case words and numbers of two or more characters in `text` ("E-17" gives "17")."""
    return {stem(word) for word in re.findall(r"[a-z0-9]{2,}", text.lower())}


def check(documents: dict[str, str], lines: list[str]) -> tuple[list[str], Counter[str]]:
    """(failures, questions per kind) for the lines of questions.jsonl against {file name: text}."""
    file_terms = {name: terms(text) for name, text in documents.items()}
    file_count = Counter(term for found in file_terms.values() for term in found)
    failures: list[str] = []
    kinds: Counter[str] = Counter()
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        where = f"line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            failures.append(f"{where}: not JSON ({error})")
            continue
        if not isinstance(item, dict) or set(item) != FIELDS:
            failures.append(f"{where}: fields must be exactly {sorted(FIELDS)}")
            continue
        question, kind, answer_file, answer = item["question"], item["kind"], item["answer_file"], item["answer"]
        if question in seen:
            failures.append(f"{where}: duplicate question {question!r}")
        seen.add(question)
        if kind not in KINDS:
            failures.append(f"{where}: kind {kind!r} is not one of {KINDS}")
        kinds[kind] += 1
        if answer_file not in documents:
            failures.append(f"{where}: answer_file {answer_file!r} is not in {DOCS}")
            continue
        if not answer.strip() or answer not in documents[answer_file]:
            failures.append(f"{where}: answer {answer!r} does not occur in {answer_file}")
        elsewhere = [name for name, text in documents.items() if name != answer_file and answer.lower() in text.lower()]
        if elsewhere:
            failures.append(f"{where}: answer {answer!r} also occurs in {', '.join(sorted(elsewhere))}")
        shared_rare = sorted(
            term for term in terms(question) & file_terms[answer_file] if file_count[term] <= RARE_FILE_COUNT
        )
        if kind == "keyword" and not shared_rare:
            failures.append(f"{where}: keyword question shares no rare term with {answer_file}: {question!r}")
        if kind == "paraphrase" and shared_rare:
            failures.append(f"{where}: paraphrase question shares rare terms {shared_rare} with {answer_file}")
    total = sum(kinds.values())
    if len(seen) < MIN_QUESTIONS:
        failures.append(f"{len(seen)} distinct questions; at least {MIN_QUESTIONS} are needed")
    for kind in KINDS:
        if kinds[kind] < MIN_KIND_SHARE * total:
            failures.append(f"{kinds[kind]} {kind} questions of {total}; at least {MIN_KIND_SHARE:.0%} are needed")
    return failures, kinds


def main() -> int:
    documents = {path.name: path.read_text(encoding="utf-8") for path in sorted(DOCS.iterdir()) if path.is_file()}
    lines = [line for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    failures, kinds = check(documents, lines)
    print(f"{len(documents)} documents, {len(lines)} questions: " + ", ".join(f"{kinds[k]} {k}" for k in KINDS))
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    print("OK" if not failures else f"{len(failures)} failures")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
