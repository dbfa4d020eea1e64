"""Character-level normalisation mappers: OpenCC conversion, ftfy, punctuation, whitespace."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from operators.base import Mapper, OpParams
from operators.charmap import CharMap
from operators.charsets import VARIOUS_WHITESPACES
from operators.registry import register

OPENCC_MODES = (
    "s2t", "t2s", "s2tw", "tw2s", "s2hk", "hk2s", "s2twp", "tw2sp", "t2tw", "tw2t", "hk2t", "t2hk", "t2jp", "jp2t",
)


class ChineseConvertParams(OpParams):
    mode: Literal[OPENCC_MODES] = "s2t"  # type: ignore[valid-type]
    keep_after_nul: bool = False
    """Fix (opt-in): OpenCC ends its output at the first NUL character (`a\\x00b` becomes `a`), and Data-Juicer
    passes that on, losing the rest of the document. With the fix each NUL-separated piece is converted and
    the NULs are kept (no dictionary phrase contains a NUL, so the pieces convert as the whole would)."""


@register
class ChineseConvertMapper(Mapper):
    name = "chinese_convert_mapper"
    summary = "Convert between Traditional/Simplified Chinese and Kanji with OpenCC (pinned 1.1.9)."
    Params = ChineseConvertParams

    def setup(self) -> None:
        import opencc

        from operators.mappers.opencc_fast import OpenCCShortcut, ShortcutUnavailable

        self._converter = opencc.OpenCC(self.params.mode + ".json")
        try:
            # exact shortcut: one str.translate unless a dictionary phrase occurs (tests/operators/test_opencc_fast.py)
            shortcut = OpenCCShortcut(self.params.mode, self._converter)
            self._convert, self._convert_many = shortcut.convert, shortcut.convert_many
        except ShortcutUnavailable:
            self._convert = self._converter.convert
            self._convert_many = None

    def map_text(self, text: str) -> str:
        if self.params.keep_after_nul and "\x00" in text:
            return "\x00".join(self._convert(piece) for piece in text.split("\x00"))
        return self._convert(text)

    def map_texts(self, texts: list[str]) -> list[str]:
        if self._convert_many is None or self.params.keep_after_nul:
            return super().map_texts(texts)
        return self._convert_many(texts)


class FixUnicodeParams(OpParams):
    normalization: str | None = None

    @field_validator("normalization")
    @classmethod
    def _known_form(cls, value: str | None) -> str | None:
        if value and value.upper() not in ("NFC", "NFKC", "NFD", "NFKD"):
            raise ValueError("must be one of NFC, NFKC, NFD, NFKD")
        return value


@register
class FixUnicodeMapper(Mapper):
    name = "fix_unicode_mapper"
    summary = "ftfy.fix_text (mojibake, widths, quotes, line breaks, controls) plus Unicode normalisation."
    Params = FixUnicodeParams

    def setup(self) -> None:
        # Exactly ftfy.fix_text(text, normalization=form) (the reference, used for parity in
        # tests/operators/test_ftfy_fast.py), with ftfy itself run only on the lines that need it.
        from operators.mappers.ftfy_fast import fix_text_fast

        self._fix = fix_text_fast
        self._form = (self.params.normalization or "NFC").upper()

    def map_text(self, text: str) -> str:
        return self._fix(text, normalization=self._form)


PUNCTUATION_MAP = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"', "」": '"',
    "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!", "（": "(", "）": ")",
    "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">",
    "【": "[", "】": "]", "％": "%", "►": "-",
}


class PunctuationParams(OpParams):
    fix_fullwidth_one: bool = False
    """Fix (opt-in): map the full-width digit `１` to `1` (Data-Juicer maps it to `"`)."""


@register
class PunctuationNormalizationMapper(Mapper):
    name = "punctuation_normalization_mapper"
    summary = "Map ~35 Unicode punctuation marks to ASCII equivalents."
    Params = PunctuationParams

    def setup(self) -> None:
        mapping = dict(PUNCTUATION_MAP)
        if self.params.fix_fullwidth_one:
            mapping["１"] = "1"
        self._map = CharMap(mapping)  # = text.translate(mapping), paying only for the marks present

    def map_text(self, text: str) -> str:
        return self._map(text)


@register
class WhitespaceNormalizationMapper(Mapper):
    name = "whitespace_normalization_mapper"
    summary = "Strip the ends; map tab, NBSP, U+2000-200D, U+3000 and others to a space."

    _MAP = CharMap({c: " " for c in VARIOUS_WHITESPACES})

    def map_text(self, text: str) -> str:
        return self._MAP(text.strip())
