"""remove_repeat_sentences_mapper: drop later repeats of a sentence within a document."""

from __future__ import annotations

import re

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

# The same rules applied to a whole document at once: a split is marked with U+001E instead of a newline,
# and the "next character" class excludes the newline, since per line there is no next character at a
# line's end. Inserted marks stand where the per-line rules insert newlines, and later rules see them
# just as they see those newlines, so splitting the result on newlines and then on U+001E gives every
# line's sentences exactly (tests/operators/test_sentences.py checks it against the per-line reference).
_MARK = "\x1e"


def _whole_text(rules):
    # stdlib re: these plain classes and quantifiers mean the same in both engines, and re is faster
    # here; the per-line reference keeps Data-Juicer's `regex`, so the parity test covers the engines too.
    return tuple((re.compile(p.pattern.replace("[^’”]", r"[^’”\n]")), r.replace(r"\n", _MARK)) for p, r in rules)


_DJ_RULES_WHOLE = _whole_text(_DJ_RULES)
_FIXED_RULES_WHOLE = _whole_text(_FIXED_RULES)
# What a text must contain for each rule to match (both rule sets): any end punctuation; six dots; two
# ellipses; a closing quote.
_RULE_NEEDS = (None, ("......",), ("……",), ("’", "”"))


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

    # stdlib re: same semantics for a plain character class, ~2.5x faster than `regex` here
    _SPECIAL = re.compile(r"[^a-zA-Z0-9\u4e00-\u9fa5\n\t ]")

    def setup(self) -> None:
        fixed = self.params.fix_sentence_split
        self._rules = _FIXED_RULES if fixed else _DJ_RULES
        self._rules_whole = _FIXED_RULES_WHOLE if fixed else _DJ_RULES_WHOLE

    def _split(self, line: str) -> list[str]:
        for pattern, repl in self._rules:
            line = pattern.sub(repl, line)
        return line.split("\n")

    def _sentences_by_line(self, text: str) -> list[list[str]]:
        if _MARK in text:  # the mark would be ambiguous: split line by line
            return [self._split(line) if line else [] for line in text.split("\n")]
        for (pattern, repl), needs in zip(self._rules_whole, _RULE_NEEDS):
            # a rule whose literal is absent cannot match (inserted marks add none): skip its scan
            if needs is None or any(s in text for s in needs):
                text = pattern.sub(repl, text)
        return [line.split(_MARK) if line else [] for line in text.split("\n")]

    def map_text(self, text: str) -> str:
        return self._dedup(self._sentences_by_line(text))

    def map_text_reference(self, text: str) -> str:
        """Data-Juicer's procedure as written: split each line separately."""
        return self._dedup([self._split(line) if line else [] for line in text.split("\n")])

    def _dedup(self, lines: list[list[str]]) -> str:
        p = self.params
        seen: set[str] = set()
        out_lines = []
        for sentences in lines:
            kept = []
            if sentences:
                for sentence in sentences:
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
