"""`html_to_text`: the text of a document as CleanHtmlMapper's reference computes it (`<li>`/`<ol>` become
`\\n*`, closing tags are dropped, then selectolax 1.0.2's `LexborHTMLParser(text).text()`), without the parser
when the document holds neither `<` nor `&`.

Why the shortcut is exact. selectolax encodes the text to UTF-8 with errors="ignore" (lone surrogates vanish) and
lexbor parses the bytes as a full HTML document (HTML Standard, section 13.2):

* input stream preprocessing turns CR LF and lone CR into LF;
* without `<` the tokenizer only ever emits character tokens, and without `&` no character reference is decoded
  (U+0000 is passed on as a character token; nothing else changes);
* tree construction ignores ASCII whitespace (tab, LF, FF, space) in the "initial", "before html" and "before head"
  modes; the first other character (U+0000 included) creates html/head/body and every later character token
  goes into the body's text, except U+0000, which "in body" ignores;
* `.text()` concatenates the document's text nodes, and the walk decodes them back.

So the result is the text with surrogates dropped, CR LF / CR folded to LF, leading tab/LF/FF/space stripped, and
then every U+0000 removed. tests/operators/test_html_fast.py checks this against the parser for every code point
in several contexts, on random text and on real documents.
"""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

__all__ = ["html_to_text", "html_to_text_reference"]

_HTML_WHITESPACE = "\t\n\x0c "
_MAX_FAST_LEN = 500_000_000  # selectolax refuses inputs over 2.5e9 UTF-8 bytes; leave such texts to it


def html_to_text_reference(text: str) -> str:
    """CleanHtmlMapper's definition: list tags to `\\n*`, then the parsed document's text."""
    text = text.replace("<li>", "\n*").replace("</li>", "").replace("<ol>", "\n*").replace("</ol>", "")
    return LexborHTMLParser(text).text()


def html_to_text(text: str) -> str:
    """Exactly `html_to_text_reference(text)`."""
    if "<" in text or "&" in text or type(text) is not str or len(text) > _MAX_FAST_LEN:
        return html_to_text_reference(text)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: selectolax drops them when it encodes
            text = text.encode("utf-8", "ignore").decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.lstrip(_HTML_WHITESPACE)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text
