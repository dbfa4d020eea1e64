"""Pattern-based cleaning mappers: e-mail, IP, links, HTML, copyright headers, LaTeX macros, characters."""

from __future__ import annotations

from typing import ClassVar

import re

import regex
from pydantic import field_validator

from operators.base import Mapper, OpParams
from operators.charmap import CharMap
from operators.registry import register


def _strip_raw_prefix(pattern: str | None) -> str | None:
    """Data-Juicer accepts a pattern written as a Python raw literal (`r'...'`) and strips the wrapper."""
    if pattern is not None and len(pattern) > 2 and pattern[:2] in ("r'", 'r"') and pattern[-1] == pattern[1]:
        return pattern[2:-1]
    return pattern


class PatternParams(OpParams):
    pattern: str | None = None
    repl: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        value = _strip_raw_prefix(value)
        if value is not None:
            try:
                regex.compile(value, flags=regex.DOTALL)
            except regex.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class PatternMapper(Mapper):
    """Replace every match of a pattern (the operator's default or the user's) with `repl`."""

    default_pattern: ClassVar[str]

    def setup(self) -> None:
        self._regex = regex.compile(self.effective_pattern(), flags=regex.DOTALL)

    def effective_pattern(self) -> str:
        return self.params.pattern if self.params.pattern is not None else self.default_pattern

    def map_text(self, text: str) -> str:
        return self._regex.sub(self.params.repl, text)


@register
class CleanEmailMapper(PatternMapper):
    name = "clean_email_mapper"
    summary = "Remove e-mail addresses (case-sensitive domain, as Data-Juicer)."
    Params = PatternParams
    default_pattern = r"[A-Za-z0-9.\-+_]+@[a-z0-9.\-+_]+\.[a-z]+"

    # The default pattern needs an address character, '@', and a domain character (a Java `@Override` or a
    # Python decorator has none before its '@').
    _HINT = re.compile(r"[A-Za-z0-9.\-+_]@[a-z0-9.\-+_]")

    def map_text(self, text: str) -> str:
        if self.params.pattern is None and self._HINT.search(text) is None:
            return text
        return self._regex.sub(self.params.repl, text)


_IPV4 = (
    r"(?:(?:1[0-9][0-9]\.)|(?:2[0-4][0-9]\.)|(?:25[0-5]\.)|(?:[1-9][0-9]\.)|(?:[0-9]\.)){3}"
    r"(?:(?:1[0-9][0-9])|(?:2[0-4][0-9])|(?:25[0-5])|(?:[1-9][0-9])|(?:[0-9]))"
)
_IPV6 = r"([\da-fA-F]{1,4}:){7}[\da-fA-F]{1,4}"


class CleanIpParams(PatternParams):
    word_boundaries: bool = False
    """Fix (opt-in): match an IPv4 address only where it is not part of a longer number or dotted
    sequence (Data-Juicer turns `10.0.0.256` into `6` and `1.2.3.4.5` into `.5`)."""


@register
class CleanIpMapper(PatternMapper):
    name = "clean_ip_mapper"
    summary = "Remove IPv4 and full 8-group IPv6 addresses."
    Params = CleanIpParams
    default_pattern = _IPV4 + "|" + _IPV6

    def effective_pattern(self) -> str:
        if self.params.pattern is None and self.params.word_boundaries:
            return r"(?<![0-9.])" + _IPV4 + r"(?![0-9]|\.[0-9])|" + _IPV6
        return super().effective_pattern()

    # The default pattern needs four dot-separated digit groups (IPv4) or seven colons (IPv6).
    _IPV4_HINT = re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")

    def map_text(self, text: str) -> str:
        if self.params.pattern is None and text.count(":") < 7 and self._IPV4_HINT.search(text) is None:
            return text
        return self._regex.sub(self.params.repl, text)


_URL_BODY = r"[^\s()<>]"
_URL_END = r"[^\s`!()\[\]{};:'\".,<>?«»“”‘’]"


def _links_pattern(body: str, end: str, start: str) -> str:
    return (
        start + r"((?:[a-z][\w-]+:(?:\/{1,3}|[a-z0-9%])|www\d{0,3}[.]|[a-z0-9.\-]+[.][a-z]{2,4}\/)"
        rf"(?:{body}+|\(({body}+|(\({body}+\)))*\))+"
        rf"(?:\(({body}+|(\({body}+\)))*\)|{end}))"
    )


# CJK ideographs, CJK punctuation and full-width forms end a URL under the opt-in fix.
_CJK = r"\p{Han}\u3000-\u303f\uff00-\uffef"


class CleanLinksParams(PatternParams):
    stop_at_cjk: bool = False
    """Fix (opt-in): a URL may start right after CJK text and ends at the first CJK character or CJK
    punctuation. Data-Juicer's Unicode word boundary makes `访问https://www.x.com/p。然后更多` lose
    everything from `www` to the next space."""


@register
class CleanLinksMapper(PatternMapper):
    name = "clean_links_mapper"
    summary = "Remove URLs (http/https/ftp/www/domain paths)."
    Params = CleanLinksParams
    default_pattern = "(?i)" + _links_pattern(_URL_BODY, _URL_END, r"\b")

    # Each alternative of the default pattern needs one of: a ':' followed by '/' or [a-z0-9%] (a scheme;
    # under (?i) the class also takes 'ſ' and the Kelvin sign, none of them whitespace), 'www' in any case, or
    # a '.' and two to four letters followed by '/' (a domain path). The hint asks for a superset of each.
    _HINT = re.compile(r":\S|[wW]{3}|\.[^\s/]{2,4}/")

    def map_text(self, text: str) -> str:
        if self.params.pattern is None and self._HINT.search(text) is None:
            return text
        return self._regex.sub(self.params.repl, text)

    def effective_pattern(self) -> str:
        if self.params.pattern is None and self.params.stop_at_cjk:
            body = rf"[^\s()<>{_CJK}]"
            end = rf"[^\s`!()\[\]{{}};:'\".,<>?«»“”‘’{_CJK}]"
            return "(?i)" + _links_pattern(body, end, r"(?<![a-z0-9])")
        return super().effective_pattern()


@register
class CleanHtmlMapper(Mapper):
    name = "clean_html_mapper"
    summary = "HTML to text with selectolax/lexbor; <li>/<ol> become '\\n*'."

    def setup(self) -> None:
        # html_to_text is exactly html_to_text_reference (list tags to "\n*", then selectolax/lexbor's text()),
        # computed without the parser for documents with no `<` and no `&` (tests/operators/test_html_fast.py).
        from operators.mappers.html_fast import html_to_text

        self._to_text = html_to_text

    def map_text(self, text: str) -> str:
        return self._to_text(text)


@register
class CleanCopyrightMapper(Mapper):
    name = "clean_copyright_mapper"
    summary = "Drop the first C block comment if it mentions copyright, else leading comment/empty lines."

    _BLOCK = regex.compile(r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/")
    _COPYRIGHT = regex.compile("copyright", regex.IGNORECASE)

    def map_text(self, text: str) -> str:
        if "/*" in text:
            match = self._BLOCK.search(text)
            if match:
                begin, end = match.span()
                if self._COPYRIGHT.search(text, begin, end):
                    return text[:begin] + text[end:]
                return text
        lines = text.split("\n")
        skip = 0
        for line in lines:
            if not line or line.startswith(("//", "#", "--")):
                skip += 1
            else:
                break
        return "\n".join(lines[skip:]) if skip else text


class RemoveSpecificCharsParams(OpParams):
    chars_to_remove: str | list[str] = "◆●■►▼▲▴∆▻▷❖♡□"


@register
class RemoveSpecificCharsMapper(Mapper):
    name = "remove_specific_chars_mapper"
    summary = "Delete each listed character."
    Params = RemoveSpecificCharsParams

    def setup(self) -> None:
        chars = self.params.chars_to_remove
        chars = "".join(chars) if isinstance(chars, list) else chars
        # Data-Juicer builds a character class from the items; multi-character list items therefore
        # delete each of their characters, which a per-character table reproduces.
        self._delete = CharMap({c: "" for c in chars})

    def map_text(self, text: str) -> str:
        return self._delete(text)


class ExpandMacroParams(OpParams):
    keep_definitions: bool = False
    """Fix (opt-in): leave the `\\newcommand`/`\\def` lines themselves untouched (Data-Juicer also
    expands macros inside their own and other macros' definition lines)."""


@register
class ExpandMacroMapper(Mapper):
    name = "expand_macro_mapper"
    summary = "Expand argument-free LaTeX \\newcommand and \\def macros."
    Params = ExpandMacroParams

    _NEWCOMMAND = regex.compile(r"\\\bnewcommand\b\*?\{(\\[a-zA-Z0-9]+?)\}\{(.*?)\}$", flags=regex.MULTILINE)
    _DEF = regex.compile(r"\\def\s*(\\[a-zA-Z0-9]+?)\s*\{(.*?)\}$", flags=regex.MULTILINE)

    def _macros(self, text: str) -> dict[str, str]:
        macros: dict[str, str] = {}
        for reg in (self._NEWCOMMAND, self._DEF):
            for match in reg.finditer(text):
                # Data-Juicer escapes name and value with unicode-escape and uses them as regex pattern and
                # replacement template; doing the same keeps its decisions (and its errors) identical.
                name = match.group(1).encode("unicode-escape").decode("utf-8")
                value = match.group(2).encode("unicode-escape").decode("utf-8")
                macros[name] = value
        return macros

    def map_text(self, text: str) -> str:
        if "\\newcommand" not in text and "\\def" not in text:
            return text
        macros = self._macros(text)
        if not macros:
            return text
        if self.params.keep_definitions:
            return self._expand_outside_definitions(text, macros)
        for name, value in macros.items():
            text = regex.sub("(" + name + ")" + r"([^a-zA-Z0-9])", value + r"\2", text)
        return text

    def _expand_outside_definitions(self, text: str, macros: dict[str, str]) -> str:
        spans = sorted(m.span() for reg in (self._NEWCOMMAND, self._DEF) for m in reg.finditer(text))
        pieces, pos = [], 0
        for begin, end in spans:
            if begin < pos:
                continue
            pieces.append((text[pos:begin], True))
            pieces.append((text[begin:end], False))
            pos = end
        pieces.append((text[pos:], True))
        out = []
        for piece, expand in pieces:
            if expand:
                for name, value in macros.items():
                    piece = regex.sub("(" + name + ")" + r"([^a-zA-Z0-9])", value + r"\2", piece)
            out.append(piece)
        return "".join(out)
