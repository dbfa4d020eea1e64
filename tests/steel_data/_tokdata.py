"""Small cleaned datasets for the tokenize, shard and order tests (written as `steel run` writes them)."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ZH = ["今天天气很好，我们去公园散步。", "机器学习是人工智能的一个分支。", "這是一段繁體中文的文字，用來測試。",
      "北京是中华人民共和国的首都。", "他说：“你好！”然后走了。", "数据清洗、去重、分词，然后打包。"]
EN = ["The quick brown fox jumps over the lazy dog. ", "Tokenizers split text into pieces. ",
      "It's a test: don't panic, we'll see. ", "Numbers like 1234567 and 3.14159 appear too. "]
CODE = ["def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
        "class A:\n    pass\r\n", "    # indented comment with trailing spaces   \n"]
ODD = ["emoji 😀👍🏽 and flags 🇨🇳", "caf" + "e\u0301" + " (NFD) vs caf\u00e9", "literal <|endoftext|> inside",
       "<|im_start|>user\nhi<|im_end|>", "tab\tand  spaces   ", "\n\n\n", "a", " leading space", "ü" * 7]


def make_docs(kind: str, n: int, seed: int) -> list[str | None]:
    rng = random.Random(f"{kind}/{seed}")
    pool = {"zh": ZH, "en": EN, "code": CODE, "mixed": ZH + EN + CODE + ODD}[kind]
    docs: list[str | None] = []
    for i in range(n):
        k = rng.choice([1, 2, 3, 5, 8, 40]) if kind != "mixed" else rng.choice([1, 2, 4, 60])
        docs.append("".join(rng.choice(pool) for _ in range(k)))
    if kind == "mixed":
        docs[1] = ""  # empty and null documents are skipped
        docs[2] = None
        docs[3:3 + len(ODD)] = ODD
    return docs


def write_parquet_parts(folder: Path, docs: list, per_part: int = 50, text_key: str = "text") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(0, len(docs), per_part):
        part = docs[k:k + per_part]
        pq.write_table(pa.table({"id": [f"x#{k + i}" for i in range(len(part))],
                                 text_key: pa.array(part, pa.string())}),
                       folder / f"part-{k // per_part:05d}.parquet")
    return folder


def make_run_outdir(root: Path, docs: list, per_part: int = 50) -> Path:
    """A folder shaped like `steel run`'s output: data/part-*.parquet, stats.json, _work/plan.json."""
    write_parquet_parts(root / "data", docs, per_part)
    (root / "stats.json").write_text('{"recipe": "test-recipe"}')
    (root / "_work").mkdir(exist_ok=True)
    (root / "_work" / "plan.json").write_text('{"job": "cleaning-job-id", "shards": []}')
    return root


def expected_docs(docs: list) -> list[str]:
    """What the shards should hold: non-empty documents, NFC-normalised, in order."""
    return [unicodedata.normalize("NFC", d) for d in docs if d]


def sources(tmp: Path) -> dict[str, tuple[Path, list]]:
    """Three sources (zh, en, code) of different sizes, each a `steel run`-like output."""
    out = {}
    for kind, n in (("zh", 500), ("en", 150), ("code", 40)):
        docs = make_docs(kind, n, 1)
        out[kind] = (make_run_outdir(tmp / f"clean-{kind}", docs, per_part=40), docs)
    return out
