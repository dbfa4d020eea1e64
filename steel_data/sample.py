"""The built-in sample: a small mixed corpus the project generates itself (no download), plus tiny
perplexity models built from it, so that `make run` exercises the whole text recipe offline.

The documents are composed from sentences written for Steel, with the things the recipe exists to
clean planted in them: traditional characters, HTML, e-mail addresses, IPs, links, repeated sentences,
full-width punctuation, exact and near duplicates, too-short and symbol-heavy documents, and a few
broken records (invalid JSON, a missing or non-string text field) that must land in quarantine.

    python -m steel_data.sample OUTDIR     # writes OUTDIR/input/*.jsonl and OUTDIR/models/
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import orjson

ZH = [
    "今天的天氣很好，我們一起去公園散步。", "科學家認為，多吃蔬菜和水果有益於身體健康。",
    "這座城市的歷史可以追溯到兩千多年前。", "他在大學裏學習計算機科學，畢業後成爲一名工程師。",
    "春天來了，山上的花都開了，空氣中瀰漫着花香。", "這本書講述了一個關於友誼和勇氣的故事。",
    "研究人員發現，充足的睡眠可以提高學習效率。", "我們應該保護環境，減少塑料製品的使用。",
    "長江是中國最長的河流，全長約六千三百公里。", "他每天早上六點起牀，然後去跑步鍛鍊身體。",
    "這家餐廳的菜很好吃，價格也比較實惠。", "乾燥的天氣容易讓頭髮變得毛躁。",
    "人工智能正在改變我們的生活和工作方式。", "老師耐心地回答了學生們提出的每一個問題。",
    "這個問題需要從多個角度進行分析和討論。", "圖書館裏有很多關於中國古代文學的書籍。",
]
EN = [
    "The committee reviewed the proposal and asked for a revised budget.",
    "Large language models are trained on diverse text from many sources.",
    "The river flows through three provinces before reaching the sea.",
    "She wrote the first draft of the report in a single afternoon.",
    "Data cleaning removes boilerplate, duplicates and low quality pages.",
    "The museum opens at nine in the morning and closes at six in the evening.",
]
NOISE = [
    "联系我们：service@example.com 或访问 https://www.example.com/about 了解更多。",
    "<p>欢迎来到<b>我们的</b>网站</p><ul><li>首页</li><li>新闻</li></ul>",
    "服务器地址为 192.168.1.100，请勿外传。",
    "◆●■ 特价促销 ■●◆ ！！！",
    "（注：本文仅代表作者个人观点）",
]


def _doc(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.65:
        lines = []
        for _ in range(rng.randint(2, 6)):
            sents = rng.sample(ZH, rng.randint(2, 5))
            if rng.random() < 0.2:
                sents.append(sents[0])  # a repeated sentence
            if rng.random() < 0.3:
                sents.append(rng.choice(NOISE))
            lines.append("".join(sents))
        return "\n".join(lines)
    if kind < 0.9:
        return "\n".join(" ".join(rng.sample(EN, rng.randint(2, 5))) for _ in range(rng.randint(2, 5)))
    if kind < 0.95:
        return rng.choice(["好", "ok", "123", "！！！"])  # too short
    return "#### " + "=" * rng.randint(20, 60) + " 1234567890 !!! ###"


def write_sample(outdir: Path, n_docs: int = 600, seed: int = 7) -> Path:
    rng = random.Random(seed)
    docs = [_doc(rng) for _ in range(n_docs)]
    for i in range(0, n_docs, 25):  # exact and near duplicates of earlier documents
        src = docs[rng.randrange(0, max(i, 1))]
        docs.insert(i, src if rng.random() < 0.5 else src.replace(".", "!", 1))
    inp = Path(outdir) / "input"
    inp.mkdir(parents=True, exist_ok=True)
    half = len(docs) // 2
    for name, part in (("sample-a.jsonl", docs[:half]), ("sample-b.jsonl", docs[half:])):
        lines = [orjson.dumps({"text": d, "source": name}) for d in part]
        if name == "sample-b.jsonl":
            lines.insert(3, b'{"text": "broken record, no closing brace"')
            lines.insert(7, b'{"content": "text under the wrong field"}')
            lines.insert(11, b'{"text": 12345}')
        (inp / name).write_bytes(b"\n".join(lines) + b"\n")
    return inp


def read_texts(inp: Path) -> list[str]:
    """The string `text` of every readable record of the sample's input folder, in file order (the planted broken
    records left out)."""
    texts = []
    for f in sorted(Path(inp).glob("*.jsonl")):
        for line in f.read_bytes().splitlines():
            try:
                text = orjson.loads(line).get("text")
            except orjson.JSONDecodeError:
                continue  # the planted broken records
            if isinstance(text, str):
                texts.append(text)
    return texts


def main(argv: list[str] | None = None) -> int:
    from steel_data.lm import build_tiny_models

    argv = sys.argv[1:] if argv is None else argv
    outdir = Path(argv[0] if argv else "build/sample")
    inp = write_sample(outdir)
    build_tiny_models(read_texts(inp), outdir / "models", lang="zh", vocab_size=300)
    print(f"sample input: {inp}  models: {outdir / 'models'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
