"""Per-character replacement that only pays for the characters it changes.

`str.translate` looks up every character of the text in a dict; when the characters to change are a
small share of the text (punctuation, odd whitespace, bullet symbols), a compiled character class finds
them at C speed and only the matches are replaced. Same output as `text.translate(mapping)`
(tests/operators/test_charmap.py).
"""

from __future__ import annotations

import re


class CharMap:
    def __init__(self, mapping: dict[str, str]):
        self.mapping = {k: v for k, v in mapping.items() if k != v}  # identity entries change nothing
        if any(len(k) != 1 for k in self.mapping):
            raise ValueError("CharMap maps single characters")
        self._class = (
            re.compile("[" + "".join(re.escape(c) for c in sorted(self.mapping)) + "]") if self.mapping else None
        )
        self._deletes_only = all(v == "" for v in self.mapping.values())
        self._lookup = self.mapping.__getitem__

    def __call__(self, text: str) -> str:
        if self._class is None or self._class.search(text) is None:
            return text
        if self._deletes_only:
            return self._class.sub("", text)
        lookup = self._lookup
        return self._class.sub(lambda m: lookup(m.group()), text)
