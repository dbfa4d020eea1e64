"""remove_repeat_sentences_mapper: drop later repeats of a sentence within a document."""

from __future__ import annotations

import regex

from operators.base import Mapper, OpParams
from operators.registry import register

# Data-Juicer's splitter, rule for rule. Its last rule writes `[.。!！？\?\.{6}\…{2}]` as a character
# class, so `{`, `6`, `}` and `2` followed by a closing quote also end a sentence.
_DJ_RULES = (
    (regex.compile(r"([.。！!？\?])([^’”])"), r"\1\n\2"),
    (regex.compile(r"(\.{6})([^’”])"), r"\1\n\2"),
    (regex.compile(r"(\…{2})([^’”])"), r"\1\n\2"),
    (regex.compile(r"([.。!！？\?\.{6}\…{2}][’”])([^’”])"), r"\1\n\2"),
)
_FIXED_RULES = _DJ_RULES[:3] + ((regex.compile(r"((?:[.。!！？?]|\.{6}|…{2})[’”])([^’”])"), r"\1\n\2"),)


class RemoveRepeatSentencesParams(OpParams):
    lowercase: bool = False
    ignore_special_character: bool = True
    min_repeat_sentence_length: int = 2
    fix_sentence_split: bool = False
    """Fix (opt-in): a closing quote ends a sentence only after real end punctuation, not after `{6}2`."""


@register
class RemoveRepeatSentencesMapper(Mapper):
    name = "remove_repeat_sentences_mapper"
    summary = "Remove sentences repeated earlier in the document (identity: letters, digits, CJK)."
    Params = RemoveRepeatSentencesParams

    _SPECIAL = regex.compile(r"[^a-zA-Z0-9\u4e00-\u9fa5\n\t ]")

    def setup(self) -> None:
        self._rules = _FIXED_RULES if self.params.fix_sentence_split else _DJ_RULES

    def _split(self, line: str) -> list[str]:
        for pattern, repl in self._rules:
            line = pattern.sub(repl, line)
        return line.split("\n")

    def map_text(self, text: str) -> str:
        p = self.params
        seen: set[str] = set()
        out_lines = []
        for line in text.split("\n"):
            kept = []
            if line:
                for sentence in self._split(line):
                    identity = sentence.strip()
                    if p.lowercase:
                        identity = identity.lower()
                    if p.ignore_special_character:
                        identity = self._SPECIAL.sub("", identity)
                    if len(identity) < p.min_repeat_sentence_length:
                        kept.append(sentence)
                    elif identity not in seen:
                        kept.append(sentence)
                        seen.add(identity)
            out_lines.append("".join(kept))
        return "\n".join(out_lines)
