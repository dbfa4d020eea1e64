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


def _parquet_rows(path: Path) -> Iterator[dict]:
    return iter(pq.read_table(path).to_pylist())


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
    ("zhihu_*.parquet", _parquet_rows, lambda r: _join(r.get("INSTRUCTION"), r.get("RESPONSE"))),
    ("BELLE_*.json", _json_lines, lambda r: _join(r.get("instruction"), r.get("input"), r.get("output"))),
    ("firefly_*.jsonl", _json_lines, lambda r: _join(r.get("input"), r.get("target"))),
]
CODE_SOURCES = [
    ("starcode_*.parquet", _parquet_rows, lambda r: r.get("content")),
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


def _collect_extra(globs: list[str], limit: int, char_budget: int) -> list[tuple[str, str]]:
    """At most `limit` documents and about `char_budget` characters per file (the saved web pages run to
    hundreds of kB each; the whole extra corpus would take Data-Juicer tens of minutes)."""
    docs = []
    for pattern in globs:
        for path in sorted(glob.glob(str(CORPUS_DIR / pattern))):
            chars = 0
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                for i, line in enumerate(fh):
                    if i >= limit or chars >= char_budget:
                        break
                    text = json.loads(line).get("text")
                    if isinstance(text, str) and text:
                        docs.append((Path(path).name, text))
                        chars += len(text)
    return docs


def build_inputs(cache_dir: Path, extra: bool = False, extra_limit: int = 500,
                 extra_chars: int = 2_000_000) -> dict[str, Path]:
    """Write `text.jsonl` and `code.jsonl` (`{"text", "source"}` per line) and return their paths.

    Files are rewritten only when their content changes, so repeated runs reuse them.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    sets = {"text": _collect(TEXT_SOURCES, STEEL_DIR), "code": _collect(CODE_SOURCES, STEEL_DIR)}
    if extra:
        sets["text"] += _collect_extra(EXTRA_TEXT_GLOBS, extra_limit, extra_chars)
        sets["code"] += _collect_extra(EXTRA_CODE_GLOBS, extra_limit, extra_chars)
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


#: --cases: short hand-written documents aimed at the behaviours OPERATORS.md lists (and a few it does not),
#: because the real corpus rarely exercises them. They go through the op-by-op comparison only (raw mode).
EDGE_CASES = [
    # chinese_convert
    "乾燥的頭髮，乾隆年間。搧風，沈重的心情，三英哩外，拚命。\r\n第二行",
    # clean_email
    "联系 x@Example.com 或 john.doe+tag@mail-server.example.org 或 UPPER@CASE.COM 谢谢",
    # clean_html
    "<ul><li>第一</li><li>第二</li></ul><ol><li>a</li></ol>",
    "&lt;b&gt;粗体&lt;/b&gt; 与 a<b>c</b>d <script>var x=1;</script><style>p{}</style><title>标题</title>",
    "1 < 2 and 3 > 2, a<b, x &amp; y &nbsp; <!-- comment --> <p>unclosed <br/>end",
    # clean_ip
    "服务器 10.0.0.256 和 999.1.1.1 以及 1.2.3.4.5 还有 ::1 和 2001:0db8:85a3:0000:0000:8a2e:0370:7334 版本1.2.3",
    # clean_links
    "访问https://www.x.com/p。然后更多内容 结束",
    "see (http://a.b/c) and [www.example.com/path] or example.com/x?y=1#z, HTTPS://X.COM/A ftp://h.org/f 完",
    "邮箱 a@b.com 网址 http://例子.中国/路径 与 https://github.com/a/b/blob/main/x.py#L1-L9。",
    # clean_copyright
    "/* Copyright 2020 ACME */\n/* second */\nint x;",
    "/* no notice here */\n/* Copyright again */\nint y;",
    "# 标题\n// c1\n#include <x>\n-- sql\n正文",
    "// Copyright\n\n// more\ncode();\n// tail",
    # expand_macro
    "\\newcommand{\\R}{\\mathbb{R}}\n\\def\\eps{\\varepsilon}\n$x \\in \\R$, $\\eps>0$ and \\Rx and \\R",
    "\\documentclass{article}\n\\newcommand\\foo{bar}\n\\foo{} \\foo. \\foo",
    # fix_unicode
    "CafÃ© â€œquotedâ€\x9d naÃ¯ve â€™s",
    "ＡＢＣ１２３，！？：；（）～\u3000全角 “弯引号” ‘单’ 。、《》【】",
    "line1\r\nline2\rline3\x00\x07\x1b[31m red\x1b[0m e\u0301 ﬁnd ½ ™",
    "&amp; &lt;no tag&gt; &#39;x&#39; and &amp; with <tag>",
    "Ð¿Ñ€Ð¸Ð²ÐµÑ‚ Ã¼ber ГўВЂВњ ˜ ¤",
    # punctuation_normalization
    "１二３，。、“”‘’《》「」『』：？！（）；—…【】〈〉～·",
    # remove_repeat_sentences
    "今天天气很好。今天，天气很好。今天天气很好！明天见。明天见？",
    "圆周率3.14很重要。圆周率3.14很重要。a.b.c.a.b.c.",
    "好的......好的......嗯……嗯……他说“是6”他说“是6”{x}”{x}”",
    "A. B. A. 第一行重复。\n第一行重复。\n\t第一行重复。",
    # remove_specific_chars / whitespace
    "◆要点●一■二►三▼四▲五▴六∆七▻八▷九❖十♡□",
    "\u00a0 a\u2000b\u200bc\u202fd\u205fe\u2060f\u3000g\ufffch\u0084i\u0085j\tk  \n  ",
    # filters: specials, emoji, lines, words
    "😀😀 👍🏽 🇨🇳 一上士 ★☆ ©®",
    "a\u3000b c\xa0d\re\u2028f\u2029g\x1ch\x85i\n\nj",
    "",
    "   ",
    "\n\n\n",
    "x",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    " ".join(["word"] * 30),
    " ".join(f"w{i % 12}" for i in range(60)),
    "!!!hello!!! ...world... 「引号」 (paren) 123abc",
    # simhash: case, punctuation, newlines
    "The Quick Brown Fox Jumps Over The Lazy Dog again and again",
    "the quick brown fox jumps over the lazy dog again and again",
    "the, quick; brown: fox! jumps? over. the lazy dog again and again",
    "one two three\nfour five six seven eight",
    "İstanbul ΣΊΣΥΦΟΣ ẞ ǅ",
]


def write_edge_cases(cache_dir: Path) -> Path:
    path = cache_dir / "edge_cases.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in EDGE_CASES), encoding="utf-8")
    return path
