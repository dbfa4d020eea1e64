"""Unified parity input built from the Steel-LLM source samples in ../shared/corpus/steel/.

Why: the Steel-LLM sources ship in different formats with different field names; both Data-Juicer and
Steel must see exactly the same `{"text": ...}` documents, so we flatten each source once into a JSONL
file in a cache directory and feed that file to both sides. Multi-field records (QA pairs, instruction
data) are joined with a newline, the way such records are usually turned into pretraining text.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

STEEL_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "steel"
if not STEEL_DIR.exists():  # the repository may be checked out elsewhere; fall back to the workplace path
    STEEL_DIR = Path("/work/shared/corpus/steel")
CORPUS_DIR = STEEL_DIR.parent


def _join(*parts: object) -> str:
    """Join the non-empty string fields of a record with newlines."""
    return "\n".join(p for p in parts if isinstance(p, str) and p.strip())


def _json_lines(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _baike(rec: dict) -> str:
    sections = [_join(s.get("title"), s.get("content")) for s in rec.get("sections") or [] if isinstance(s, dict)]
    return _join(rec.get("title"), rec.get("summary"), *sections)


#: (glob under steel/, record reader, record -> text). Order is the order of the unified input.
TEXT_SOURCES = [
    ("sky_*.jsonl", _json_lines, lambda r: r.get("text")),
    ("wanjuan_*.jsonl", _json_lines, lambda r: r.get("content")),
    ("wiki_cn_*.json", lambda p: iter(json.loads(Path(p).read_text(encoding="utf-8"))), lambda r: r.get("completion")),
    ("baidu_baike_*.json", _json_lines, _baike),
    ("baidu_QA_*.json", _json_lines, lambda r: _join(r.get("title"), r.get("desc"), r.get("answer"))),
    ("zhihu_*.parquet", lambda p: iter(pq.read_table(p).to_pylist()), lambda r: _join(r.get("INSTRUCTION"), r.get("RESPONSE"))),
    ("BELLE_*.json", _json_lines, lambda r: _join(r.get("instruction"), r.get("input"), r.get("output"))),
    ("firefly_*.jsonl", _json_lines, lambda r: _join(r.get("input"), r.get("target"))),
]
CODE_SOURCES = [
    ("starcode_*.parquet", lambda p: iter(pq.read_table(p, columns=["content"]).to_pylist()), lambda r: r.get("content")),
]
#: --extra: the other real corpora (already `{"text": ...}` JSONL.gz), capped per file to keep runs short.
EXTRA_TEXT_GLOBS = ["zh/*.jsonl.gz", "en/*.jsonl.gz", "html/*.jsonl.gz"]
EXTRA_CODE_GLOBS = ["code/*.jsonl.gz"]


def _collect(sources, base: Path) -> list[tuple[str, str]]:
    docs = []
    for pattern, reader, to_text in sources:
        for path in sorted(glob.glob(str(base / pattern))):
            for rec in reader(path):
                text = to_text(rec)
                if isinstance(text, str) and text:
                    docs.append((Path(path).name, text))
    return docs


def _collect_extra(globs: list[str], limit: int) -> list[tuple[str, str]]:
    docs = []
    for pattern in globs:
        for path in sorted(glob.glob(str(CORPUS_DIR / pattern))):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                for i, line in enumerate(fh):
                    if i >= limit:
                        break
                    text = json.loads(line).get("text")
                    if isinstance(text, str) and text:
                        docs.append((Path(path).name, text))
    return docs


def build_inputs(cache_dir: Path, extra: bool = False, extra_limit: int = 500) -> dict[str, Path]:
    """Write `text.jsonl` and `code.jsonl` (`{"text", "source"}` per line) and return their paths.

    Files are rewritten only when their content changes, so repeated runs reuse them.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    sets = {"text": _collect(TEXT_SOURCES, STEEL_DIR), "code": _collect(CODE_SOURCES, STEEL_DIR)}
    if extra:
        sets["text"] += _collect_extra(EXTRA_TEXT_GLOBS, extra_limit)
        sets["code"] += _collect_extra(EXTRA_CODE_GLOBS, extra_limit)
    paths = {}
    for name, docs in sets.items():
        payload = "".join(json.dumps({"text": t, "source": s}, ensure_ascii=False) + "\n" for s, t in docs)
        path = cache_dir / f"{name}{'_extra' if extra else ''}.jsonl"
        if not path.exists() or hashlib.md5(path.read_bytes()).digest() != hashlib.md5(payload.encode()).digest():
            path.write_text(payload, encoding="utf-8")
        paths[name] = path
    return paths


def read_texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in open(path, encoding="utf-8") if line.strip()]
