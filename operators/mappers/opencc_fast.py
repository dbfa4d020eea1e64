"""An exact shortcut for OpenCC conversion when no dictionary phrase can match.

OpenCC segments the text by forward maximum matching on the phrase dictionary, then converts each
segment by maximum matching on the conversion dictionaries. If no multi-character key of any
dictionary occurs in the text, every segment is one character, and each character becomes the first
value of its entry in the first dictionary (in group order) that has it. That is one `str.translate`.

Texts where a multi-character key occurs, or that OpenCC treats specially (a NUL truncates its output;
lone surrogates make it raise), go to OpenCC itself. The dictionaries are read from the installed
OpenCC package with its own `opencc_dict` tool, so the shortcut always matches the installed version.
Parity with OpenCC is tested on arbitrary Unicode and on the whole corpus.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np


class ShortcutUnavailable(RuntimeError):
    pass


# Above this many phrase keys most texts contain one (s2t's ~50k phrases: 76% of Chinese documents) and
# the shortcut costs more than it saves; t2s has a few hundred (0.6% of documents need OpenCC).
MAX_PHRASE_KEYS = 2000

_PHRASE_START = np.uint8(1)
_CHANGES = np.uint8(2)
_OPENCC_ONLY = np.uint8(4)  # NUL (OpenCC truncates there) and surrogates (OpenCC raises): OpenCC decides


def _share() -> tuple[Path, Path]:
    import opencc

    base = Path(opencc.__file__).parent / "clib"
    return base / "bin" / "opencc_dict", base / "share" / "opencc"


def _dump(tool: Path, src: Path, tmp: Path) -> list[tuple[str, str]]:
    out = tmp / (src.name + ".txt")
    done = subprocess.run([str(tool), "-i", str(src), "-o", str(out), "-f", "ocd2", "-t", "text"], capture_output=True)
    if done.returncode or not out.exists():
        raise ShortcutUnavailable(f"opencc_dict failed on {src.name}: {done.stderr.decode(errors='replace')}")
    pairs = []
    for line in out.read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        if key:
            pairs.append((key, values.split(" ")[0]))
    return pairs


def _dict_files(node) -> list[str]:
    """The dictionary files of a config node, in group order."""
    if isinstance(node, dict):
        if node.get("type") == "ocd2":
            return [node["file"]]
        if node.get("type") == "group":
            return [f for d in node.get("dicts", []) for f in _dict_files(d)]
        if "dict" in node:
            return _dict_files(node["dict"])
    raise ShortcutUnavailable(f"unsupported OpenCC dictionary node {node!r}")


class OpenCCShortcut:
    """`convert(text)` equal to `opencc.OpenCC(mode + '.json').convert(text)`, mostly without OpenCC."""

    def __init__(self, mode: str, converter):
        self._converter = converter
        tool, share = _share()
        config = json.loads((share / f"{mode}.json").read_text(encoding="utf-8"))
        chain = config.get("conversion_chain", [])
        if len(chain) != 1:
            # with several conversion steps a later dictionary sees the earlier output; keep it simple
            raise ShortcutUnavailable(f"{mode}: {len(chain)} conversion steps")
        seg_files = _dict_files(config["segmentation"]["dict"])
        conv_files = _dict_files(chain[0]["dict"])
        with tempfile.TemporaryDirectory() as tmp:
            dumped = {name: _dump(tool, share / name, Path(tmp)) for name in set(seg_files + conv_files)}
        table: dict[int, str] = {}
        multi: set[str] = set()
        for name in conv_files:  # group order: the first dictionary with the key wins
            for key, value in dumped[name]:
                if len(key) == 1:
                    table.setdefault(ord(key), value)
                else:
                    multi.add(key)
        for name in seg_files:
            multi.update(k for k, _ in dumped[name] if len(k) > 1)
        if len(multi) > MAX_PHRASE_KEYS:
            raise ShortcutUnavailable(f"{mode}: {len(multi)} phrase keys; the shortcut would not pay")
        self._table = table
        # First characters of the multi-character keys, with the keys that start with them.
        self._starts: dict[str, list[str]] = {}
        for key in multi:
            self._starts.setdefault(key[0], []).append(key)
        # Per code point: PHRASE_START, OPENCC_ONLY (NUL: OpenCC truncates there; a surrogate: it raises; let it
        # do so itself), CHANGES (a single-character key whose value differs). A text with none of them is
        # returned as it is, without a translate.
        flags = np.zeros(0x110000, dtype=np.uint8)
        flags[[ord(c) for c in self._starts]] |= _PHRASE_START
        flags[0] |= _OPENCC_ONLY
        flags[0xD800:0xE000] |= _OPENCC_ONLY
        flags[[cp for cp, value in table.items() if value != chr(cp)]] |= _CHANGES
        self._flags = flags
        # For batches: a phrase starts with one of its keys' first two characters, so a text can hold a
        # phrase only where a possible first character is followed by a possible second one.
        self._second = np.zeros(0x110000, dtype=bool)
        self._second[[ord(key[1]) for key in multi]] = True
        self._by_pair: dict[str, list[str]] = {}
        for key in multi:
            self._by_pair.setdefault(key[:2], []).append(key)

    def _classify(self, text: str) -> int | None:
        """None when OpenCC itself must convert; else the OR of the flags seen (0: nothing to change)."""
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        flags = self._flags[cps]
        seen = int(np.bitwise_or.reduce(flags)) if flags.size else 0
        if seen & _OPENCC_ONLY:
            return None
        if seen & _PHRASE_START:
            for cp in np.unique(cps[(flags & _PHRASE_START) != 0]).tolist():
                if any(key in text for key in self._starts[chr(cp)]):
                    return None
        return seen

    def _apply(self, text: str, seen: int | None) -> str:
        """`text` converted, given what `_classify` (or its batch form) found in it."""
        if seen is None:
            return self._converter.convert(text)
        if not seen & _CHANGES:
            return text
        return text.translate(self._table)

    def convert_many(self, texts: list[str]) -> list[str]:
        """`convert` over a batch, with one gather over the code points of all texts: a text goes to OpenCC
        only if it holds a NUL, a surrogate or a dictionary phrase (checked only where a phrase's first two
        characters occur), else it is translated or returned as it is."""
        if not texts:
            return []
        encoded = [t.encode("utf-32-le", "surrogatepass") for t in texts]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)) // 4
        codepoints = np.frombuffer(b"".join(encoded), dtype=np.uint32)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        flags = self._flags[codepoints]
        seen = np.zeros(len(texts), dtype=np.uint8)
        filled = lengths > 0
        if filled.any():
            seen[filled] = np.bitwise_or.reduceat(flags, starts[filled])
        needs_opencc = (seen & _OPENCC_ONLY) != 0
        pair_at = np.flatnonzero(((flags[:-1] & _PHRASE_START) != 0) & self._second[codepoints[1:]])
        if len(pair_at):
            owner = np.searchsorted(ends, pair_at, side="right")
            for i, pos in zip(owner.tolist(), (pair_at - starts[owner]).tolist()):
                if not needs_opencc[i]:
                    text = texts[i]
                    keys = self._by_pair.get(text[pos : pos + 2])
                    if keys and any(text.startswith(key, pos) for key in keys):
                        needs_opencc[i] = True
        return [self._apply(text, None if opencc else flag)
                for text, flag, opencc in zip(texts, seen.tolist(), needs_opencc.tolist())]

    def convert(self, text: str) -> str:
        return self._apply(text, self._classify(text))
