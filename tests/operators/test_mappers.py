"""Mappers against the documented Data-Juicer 1.6.1 examples (../shared/OPERATORS.md) and edge cases."""

from __future__ import annotations

import pytest

from operators import registry


def run(name: str, text: str, **params) -> str:
    op = registry.build(name, params)
    op.ensure_ready()
    return op.map_texts([text])[0]


@pytest.mark.parametrize(
    "text, expected",
    [("乾燥", "干燥"), ("乾隆", "乾隆"), ("頭髮", "头发"), ("", "")],
)
def test_chinese_convert_t2s(text, expected):
    assert run("chinese_convert_mapper", text, mode="t2s") == expected


def test_chinese_convert_nul_truncation_and_its_fix():
    text = "乾燥\x00後面的頭髮\x00\x00尾"
    assert run("chinese_convert_mapper", text, mode="t2s") == "干燥"  # Data-Juicer (OpenCC) loses the rest
    fixed = run("chinese_convert_mapper", text, mode="t2s", keep_after_nul=True)
    assert fixed == "干燥\x00后面的头发\x00\x00尾"
    assert run("chinese_convert_mapper", "頭髮", mode="t2s", keep_after_nul=True) == "头发"
    op = registry.build("chinese_convert_mapper", {"mode": "t2s", "keep_after_nul": True})
    op.ensure_ready()
    assert op.map_texts([text, "頭髮", ""]) == [fixed, "头发", ""]


def test_chinese_convert_rejects_unknown_mode():
    with pytest.raises(registry.RecipeError, match="mode"):
        registry.build("chinese_convert_mapper", {"mode": "x2y"})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mail a.b-c+d_e@mail.example.com now", "mail  now"),
        ("x@Example.com", "x@Example.com"),  # upper-case domain stays
        ("no at sign here", "no at sign here"),
    ],
)
def test_clean_email(text, expected):
    assert run("clean_email_mapper", text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x<li>a</li><li>b</li>", "x\n*a\n*b"),
        ("<li>a</li>", "*a"),  # leading whitespace before the body is dropped by HTML parsing
        ("a<b>c</b>d", "acd"),
        ("&lt;b&gt;", "<b>"),
        ("<title>T</title><script>s</script>x", "Tsx"),
    ],
)
def test_clean_html(text, expected):
    assert run("clean_html_mapper", text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ip 10.0.0.1 end", "ip  end"),
        ("10.0.0.256", "6"),
        ("999.1.1.1", "9"),
        ("1.2.3.4.5", ".5"),
        ("::1 stays", "::1 stays"),
        ("v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 x", "v6  x"),
    ],
)
def test_clean_ip_compatible(text, expected):
    assert run("clean_ip_mapper", text) == expected


def test_clean_ip_fix_is_opt_in():
    assert run("clean_ip_mapper", "10.0.0.256 and 1.2.3.4.5", word_boundaries=True) == "10.0.0.256 and 1.2.3.4.5"
    assert run("clean_ip_mapper", "at 10.0.0.1, then", word_boundaries=True) == "at , then"


def test_clean_links_eats_cjk_like_data_juicer():
    assert run("clean_links_mapper", "访问https://www.x.com/p。然后更多") == "访问https://"
    assert run("clean_links_mapper", "see https://example.com/a?b=1 now") == "see  now"


def test_clean_links_fix_stops_at_cjk():
    assert run("clean_links_mapper", "访问https://www.x.com/p。然后更多", stop_at_cjk=True) == "访问。然后更多"


def test_clean_links_custom_raw_pattern():
    assert run("clean_links_mapper", "foo bar", pattern="r'bar'", repl="X") == "foo X"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/* Copyright 2020 X */\nint a;", "\nint a;"),
        ("/* just a comment */\nint a;", "/* just a comment */\nint a;"),
        ("// Copyright\n# hash\n--sql\n\ncode\n// later", "code\n// later"),
        ("# Heading\ntext", "text"),  # Data-Juicer removes a markdown heading at the top
        ("/* a */ x /* copyright */", "/* a */ x /* copyright */"),  # only the first block is considered
    ],
)
def test_clean_copyright(text, expected):
    assert run("clean_copyright_mapper", text) == expected


def test_expand_macro():
    text = "\\newcommand{\\R}{\\mathbb{R}}\nLet $x \\in \\R$ and \\Rx.\n"
    out = run("expand_macro_mapper", text)
    assert "$x \\in \\mathbb{R}$" in out
    assert "\\Rx" in out  # followed by an alphanumeric: not a use of \R
    end = run("expand_macro_mapper", "\\def\\foo{bar}\nuse \\foo")
    assert end.endswith("use \\foo")  # at the very end of the text: not expanded


def test_expand_macro_keep_definitions_fix():
    text = "\\newcommand{\\A}{a}\n\\newcommand{\\B}{\\A b}\nx \\B y\n"
    compatible = run("expand_macro_mapper", text)
    fixed = run("expand_macro_mapper", text, keep_definitions=True)
    assert "\\newcommand{\\B}{\\A b}" in fixed
    assert "\\newcommand{\\B}{\\A b}" not in compatible  # Data-Juicer rewrites the definition


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ＡＢＣ，！？：；（）～\u3000x", 'ABC,!?:;()~ x'),
        ("“quoted”", '"quoted"'),
        ("a\r\nb\rc", "a\nb\nc"),
        ("。、《》【】", "。、《》【】"),
        ("cafÃ©", "café"),  # mojibake repaired
    ],
)
def test_fix_unicode(text, expected):
    assert run("fix_unicode_mapper", text) == expected


def test_fix_unicode_rejects_unknown_form():
    with pytest.raises(registry.RecipeError, match="normalization"):
        registry.build("fix_unicode_mapper", {"normalization": "NFX"})


def test_punctuation_normalization():
    assert run("punctuation_normalization_mapper", "你好，世界。《书》—…１") == '你好,世界."书" - ..."'
    assert run("punctuation_normalization_mapper", "１", fix_fullwidth_one=True) == "1"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("今天天气很好。今天天气很好。", "今天天气很好。"),
        ("今天天气很好。\n今天，天气很好。", "今天天气很好。\n"),  # identity ignores punctuation
        ("a. a. b.", "a. a. b."),  # identities shorter than 2 are always kept
        ("Hello world. Bye. Hello world.", "Hello world. Bye."),
    ],
)
def test_remove_repeat_sentences(text, expected):
    out = run("remove_repeat_sentences_mapper", text, lowercase=False, ignore_special_character=True,
              min_repeat_sentence_length=2)
    assert out == expected


def test_remove_repeat_sentences_split_slip_and_fix():
    # Data-Juicer's character class splits after `6` + closing quote; the fix does not.
    text = "first6”second. first6”third."
    assert run("remove_repeat_sentences_mapper", text) == "first6”second.third."
    assert run("remove_repeat_sentences_mapper", text, fix_sentence_split=True) == text


def test_remove_specific_chars():
    assert run("remove_specific_chars_mapper", "◆a●b■") == "ab"
    assert run("remove_specific_chars_mapper", "abc", chars_to_remove=["a", "c"]) == "b"
    assert run("remove_specific_chars_mapper", "abc", chars_to_remove="") == "abc"


def test_whitespace_normalization():
    text = "  a\tb\u00a0c\u2003d\u3000e\u200bf\u0084g\u0085h\nnext  "
    assert run("whitespace_normalization_mapper", text) == "a b c d e f g\u0085h\nnext"
    assert run("whitespace_normalization_mapper", "a    b") == "a    b"  # runs are not collapsed
