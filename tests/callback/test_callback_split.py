"""split_text: parts within the byte limit, never a cut character or link, the best boundary."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wechat_kf import ValidationError
from wechat_kf.callback import split_text

LINK = re.compile(r"<a\s[^>]*>.*?</a\s*>", re.I | re.S)


def squeezed(text: str) -> str:
    return "".join(text.split())


def check(text: str, parts: list[str], max_bytes: int) -> None:
    """The properties every split has."""
    assert all(parts), "no empty part"
    assert all(len(part.encode()) <= max_bytes for part in parts)
    assert squeezed("".join(parts)) == squeezed(text)  # in order, only cut whitespace dropped
    links = LINK.findall(text)
    assert [link for part in parts for link in LINK.findall(part)] == links


def test_a_text_that_fits_is_returned_whole() -> None:
    assert split_text("短消息 short", 2048) == ["短消息 short"]
    assert split_text("é" * 1024, 2048) == ["é" * 1024]  # exactly 2,048 bytes


def test_the_default_limit_is_2048_bytes() -> None:
    parts = split_text("字" * 1000)  # 3,000 bytes
    assert [len(part.encode()) for part in parts] == [2046, 954]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("a" * 60 + "\n\n" + "b" * 30 + "\n" + "c" * 30, "a" * 60),  # paragraph over line
        ("a" * 60 + "\n" + "b" * 30 + ". " + "c" * 30, "a" * 60),  # line over sentence
        ("a" * 60 + ". " + "b" * 30 + ", " + "c" * 30, "a" * 60 + "."),  # sentence over clause
        ("a" * 60 + "。" + "b" * 29 + "，" + "c" * 30, "a" * 60 + "。"),  # Chinese sentence
        ("a" * 60 + "! ” " + "b" * 60, "a" * 60 + "!"),  # the sentence, at least
        ("a" * 60 + ", " + "b" * 30 + " " + "c" * 30, "a" * 60 + ","),  # clause over word
        ("a" * 70 + " " + "b" * 60, "a" * 70),  # a word
    ],
    ids=["paragraph", "line", "sentence", "chinese", "closer", "clause", "word"],
)
def test_the_best_boundary_in_the_back_half_wins(text: str, first: str) -> None:
    parts = split_text(text, 100)
    assert parts[0] == first
    check(text, parts, 100)


def test_a_boundary_in_the_front_half_is_not_taken_over_a_fuller_part() -> None:
    text = "a" * 20 + "\n\n" + "b" * 200
    parts = split_text(text, 100)
    assert len(parts[0].encode()) == 100  # the paragraph end at 20 bytes is too early
    check(text, parts, 100)


def test_a_link_is_never_cut_and_a_long_one_is_refused() -> None:
    link = '<a href="https://x.example/p" data-miniprogram-appid="wxabc">打开小程序</a>'
    text = "x" * 80 + link + "y" * 80
    parts = split_text(text, 120)
    assert any(link in part for part in parts)
    check(text, parts, 120)
    with pytest.raises(ValidationError, match=r"holds a link of .* bytes: more than a part"):
        split_text("see " + '<a href="https://x.example/' + "p" * 200 + '">x</a>', 100)


@pytest.mark.parametrize(
    "cluster",
    [
        "👍🏽",  # a skin tone
        "👨\u200d👩\u200d👧",  # a family: zero-width joiners
        "🇨🇳",  # a flag: two regional indicators
        "e\u0301",  # a combining accent
        "❤\ufe0f",  # a variation selector
        "\r\n",
    ],
)
def test_what_shows_as_one_character_stays_together(cluster: str) -> None:
    for offset in range(len(cluster.encode()) + 2):
        text = "x" * (60 - offset) + cluster * 20
        parts = split_text(text, 64)
        for part in parts:
            stripped = part.replace("x", "")
            if cluster != "\r\n":
                assert stripped == cluster * (len(stripped) // len(cluster)), (offset, parts)
        check(text, parts, 64)


def test_a_surrogate_pair_is_joined_and_a_lone_one_refused() -> None:
    pair = "\ud83d\ude00"  # 😀 as UTF-16 halves
    parts = split_text("x" * 62 + pair * 10, 64)
    assert parts[0] == "x" * 62
    assert "".join(parts[1:]) == "😀" * 10
    with pytest.raises(ValidationError, match="lone surrogate"):
        split_text("x" * 100 + "\ud83d" + "y", 64)


def test_max_parts_makes_the_parts_fuller_to_fit() -> None:
    text = "a" * 30 + "\n\n" + "b" * 50 + "\n\n" + "c" * 50 + "\n\n" + "d" * 50 + "\n\n" + "e" * 50
    assert split_text(text, 100) == ["a" * 30 + "\n\n" + "b" * 50, "c" * 50, "d" * 50, "e" * 50]
    fitted = split_text(text, 100, max_parts=3)  # still at paragraph ends where they fit
    assert fitted == [
        "a" * 30 + "\n\n" + "b" * 50,
        "c" * 50 + "\n\n" + "d" * 48,
        "d" * 2 + "\n\n" + "e" * 50,
    ]
    check(text, fitted, 100)
    assert split_text(text, 100, max_parts=2) == split_text(text, 100, max_parts=1)  # cannot fit:
    assert [len(part) for part in split_text(text, 100, max_parts=2)] == [100, 100, 38]  # full


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_bytes": 8}, "max_bytes"),
        ({"max_bytes": True}, "max_bytes"),
        ({"max_parts": 0}, "max_parts"),
    ],
)
def test_arguments_are_checked(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        split_text("text", **options)  # type: ignore[arg-type]


PIECES = st.sampled_from(
    [
        "word",
        "字",
        "。",
        ". ",
        "!",
        "\n",
        "\n\n",
        " ",
        "，",
        "😀",
        "👍🏽",
        "e\u0301",
        "🇨🇳",
        '<a href="https://x.example/p" data-miniprogram-path="pages/a">链接 link</a>',
        "\r\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(PIECES, max_size=300), max_bytes=st.integers(96, 300))
def test_every_split_keeps_its_promises(pieces: list[str], max_bytes: int) -> None:
    text = "".join(pieces)
    parts = split_text(text, max_bytes)
    if len(text.encode()) <= max_bytes:
        assert parts == [text]
    else:
        check(text, parts, max_bytes)
        fitted = split_text(text, max_bytes, max_parts=max(1, len(parts) - 1))
        check(text, fitted, max_bytes)
        assert len(fitted) <= len(parts)


# --------------------------------------------------------------------------- byte limits


@pytest.mark.parametrize(
    "char",
    ["\x7f", "\x80", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff"],
    ids=[
        "1-byte-last",
        "2-byte-first",
        "2-byte-last",
        "3-byte-first",
        "3-byte-last",
        "4-byte-first",
        "4-byte-last",
    ],
)
def test_each_utf8_length_counts_at_the_limit_and_one_past_it(char: str) -> None:
    size = len(char.encode())
    fit = 64 // size
    if 64 % size == 0:  # exactly the limit: whole
        assert split_text(char * fit, 64) == [char * fit]
    parts = split_text(char * (fit + 1), 64)  # one character more: cut before it
    assert parts == [char * fit, char]
    assert [len(part.encode()) for part in parts] == [fit * size, size]


def test_the_smallest_part_is_16_bytes() -> None:
    assert split_text("a" * 16, 16) == ["a" * 16]
    assert split_text("a" * 17, 16) == ["a" * 16, "a"]
    with pytest.raises(ValidationError) as info:
        split_text("a" * 17, 15)
    assert (info.value.field, info.value.limit, info.value.value) == (
        "max_bytes",
        "must be an int of at least 16 (bytes)",
        15,
    )
    assert str(info.value) == "max_bytes: must be an int of at least 16 (bytes)"


def test_a_text_of_exactly_the_limit_is_returned_as_it_is() -> None:
    assert split_text("a" * 63 + "\n", 64) == ["a" * 63 + "\n"]  # its own newline kept
    assert split_text("a" * 64 + "\n", 64) == ["a" * 64]  # one past: the cut drops it
    assert split_text("😀" * 16, 64) == ["😀" * 16]
    assert split_text("😀" * 16 + "a", 64) == ["😀" * 16, "a"]


def test_surrogate_pairs_count_as_the_4_bytes_of_their_character() -> None:
    pair = "\ud83d\ude00"  # 😀 as UTF-16 halves: 4 bytes of UTF-8, not 2 x 3
    assert split_text(pair * 16, 64) == ["😀" * 16]  # exactly the limit
    assert split_text(pair * 17, 64) == ["😀" * 16, "😀"]  # one past
    assert split_text("x" * 60 + pair, 64) == ["x" * 60 + "😀"]  # 64 bytes
    assert split_text("x" * 61 + pair, 64) == ["x" * 61, "😀"]  # 65: cut before, not inside it


def test_a_lone_surrogate_is_refused_naming_the_content() -> None:
    with pytest.raises(ValidationError) as info:
        split_text("x" * 100 + "\udc00", 64)
    assert info.value.field == "content"
    assert str(info.value) == (
        "content: holds a lone surrogate (half of a UTF-16 pair): it has no UTF-8 form"
    )


# --------------------------------------------------------------------------- what stays together


@pytest.mark.parametrize(
    ("before", "after", "together"),
    [
        ("a", "\U0001f3fb", True),  # the first skin tone
        ("a", "\U0001f3ff", True),  # the last
        ("a", "\U0001f3fa", False),  # around them: an amphora, a rat
        ("a", "\U0001f400", False),
        ("🏴", "\U000e0020", True),  # the first emoji tag
        ("🏴", "\U000e007f", True),  # the last (cancel tag)
        ("🏴", "\U000e0080", False),
        ("a", "\ufe0f", True),  # variation selectors
        ("a", "\ufe00", True),
        ("a", "\ufe10", False),  # a vertical comma
        ("a", "\U000e0100", True),  # variation selectors supplement
        ("a", "\U000e01ef", True),
        ("a", "\U000e01f0", False),
        ("a", "\u0301", True),  # Mn: a combining accent
        ("a", "\u20dd", True),  # Me: an enclosing circle
        ("क", "\u0903", True),  # Mc: a spacing mark (visarga)
        ("👨", "\u200d", True),  # a zero-width joiner, and what follows it
        ("\U0001f1e6", "\U0001f1e6", True),  # two regional indicators: a flag
        ("\U0001f1ff", "\U0001f1ff", True),
        ("\U0001f1ff", "\U0001f200", False),  # a square hiragana after the last indicator
        ("\U0001f1e5", "\U0001f1e6", False),
        ("\r", "\n", True),
        ("a", "\n", False),
    ],
)
def test_a_cut_never_falls_between_what_shows_together(
    before: str, after: str, together: bool
) -> None:
    head = "x" * (64 - len(before.encode()))
    text = head + before + after + "y" * 40  # the fullest cut falls between the two
    first = split_text(text, 64)[0]
    assert first == (head if together else head + before).rstrip()
    fullest = split_text(text, 64, max_parts=1)[0]  # cannot fit: each part as full as it can be
    assert fullest == first


def test_what_shows_as_one_character_and_is_longer_than_a_part_is_cut_as_full_as_can_be() -> None:
    text = "e" + "\u0301" * 40  # 81 bytes, one character on screen
    assert split_text(text, 64) == ["e" + "\u0301" * 31, "\u0301" * 9]
    # before it, a cut in the front half of a part beats cutting it
    assert split_text("ab" + text, 64) == ["ab", text[:32], "\u0301" * 9]


def test_a_zero_width_joiner_holds_both_its_neighbours() -> None:
    text = "x" * 57 + "👨\u200d👩" + "y" * 40  # the fullest cut: after the joiner
    assert split_text(text, 64)[0] == "x" * 57


def test_a_link_of_exactly_a_part_is_kept_whole_and_one_byte_more_is_refused() -> None:
    def link(size: int) -> str:
        frame = '<a href="">x</a>'
        return frame.replace('""', '"' + "p" * (size - len(frame)) + '"')

    exact = link(100)
    assert len(exact.encode()) == 100
    assert split_text("see " + exact + " now", 100) == ["see", exact, "now"]
    with pytest.raises(ValidationError) as info:
        split_text("see " + link(101), 100)
    assert info.value.field == "content"
    assert info.value.limit == (
        "holds a link of 101 bytes: more than a part (100 bytes), so it cannot be sent whole"
    )
    assert info.value.value == link(101)[:80]


# --------------------------------------------------------------------------- the best boundary


@pytest.mark.parametrize(
    ("text", "first"),
    [
        # the blank line starts in the front half: only the cut after it is a paragraph end
        ("a" * 48 + "\n\n" + "b" * 20 + "\n" + "c" * 60, "a" * 48),
        ("a" * 47 + "\r\n\r\n" + "b" * 20 + "\r\n" + "c" * 60, "a" * 47),
        ("a" * 47 + "\n\r\n" + "b" * 20 + "\n" + "c" * 60, "a" * 47),
        # the cut between two line breaks: a paragraph end known by the one after it
        ("a" * 55 + "\n\n" + "b" * 42 + "\n\n" + "c" * 50, "a" * 55 + "\n\n" + "b" * 42),
        ("a" * 55 + "\n\n" + "b" * 42 + "\n\r\n" + "c" * 50, "a" * 55 + "\n\n" + "b" * 42),
    ],
    ids=["lf", "crlf", "lf-crlf", "lf-next", "cr-next"],
)
def test_a_paragraph_end_is_found_whatever_its_line_breaks(text: str, first: str) -> None:
    assert split_text(text, 100)[0] == first


def test_a_full_stop_is_a_sentence_end_only_before_a_space() -> None:
    text = "a" * 55 + " " + "b" * 10 + ".com" + "c" * 50  # a domain, not a sentence
    assert split_text(text, 100)[0] == "a" * 55
    text = "a" * 55 + " " + "b" * 10 + ". " + "c" * 50
    assert split_text(text, 100)[:2] == ["a" * 55 + " " + "b" * 10 + ".", "c" * 50]


@pytest.mark.parametrize("closing", ["!”", "。」", "?)"])
def test_a_closing_quote_after_a_sentence_end_stays_with_it(closing: str) -> None:
    text = "a" * 60 + closing + "b" * 60
    assert split_text(text, 100)[:2] == ["a" * 60 + closing, "b" * 60]


def test_a_crlf_is_never_cut_though_its_cr_is_the_latest_whitespace() -> None:
    text = "a" * 50 + " " + "b" * 12 + "\r\n" + "c" * 40  # the fullest cut: inside the CRLF
    assert split_text(text, 64) == ["a" * 50, "b" * 12 + "\r\n" + "c" * 40]


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 64 + "\n" + "b" * 40, ["a" * 64, "b" * 40]),  # a line of exactly a part
        ("X" * 64 + " " + "X" * 40, ["X" * 64, "X" * 40]),  # a word of exactly a part
        ("a" * 64 + "XY" * 5, ["a" * 64, "XY" * 5]),  # no space at the cut: nothing dropped
        ("a" * 60 + "\n" + "X" * 40, ["a" * 60, "X" * 40]),
        ("a" * 60 + "\n" + "  indented" * 3, ["a" * 60, "  indented" * 3]),  # its own spaces
        ("a" * 60 + " \t \n\n" + "b" * 40, ["a" * 60, "b" * 40]),
    ],
    ids=["line", "word", "no-space", "line-x", "indent", "spaces-then-lines"],
)
def test_only_the_whitespace_at_the_cut_is_dropped(text: str, parts: list[str]) -> None:
    assert split_text(text, 64) == parts


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("a" * 30 + "\n\n" + "b" * 60, "a" * 30),  # the cut at exactly half a part: taken
        ("a" * 29 + "\n\n" + "b" * 60, "a" * 29 + "\n\n" + "b" * 34),  # one before: too early
    ],
    ids=["half", "before-half"],
)
def test_a_boundary_counts_from_exactly_half_a_part(text: str, first: str) -> None:
    assert split_text(text, 65)[0] == first  # 65 // 2 = 32 bytes


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("bad", [64.0, "64", None])
def test_max_bytes_must_be_an_int(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        split_text("a" * 100, bad)  # type: ignore[arg-type]
    assert (info.value.field, info.value.value) == ("max_bytes", bad)


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "2"])
def test_max_parts_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        split_text("a" * 100, 64, max_parts=bad)  # type: ignore[arg-type]
    assert (info.value.field, info.value.limit, info.value.value) == (
        "max_parts",
        "must be a positive int",
        bad,
    )
    assert split_text("a" * 100, 64, max_parts=1) == ["a" * 64, "a" * 36]  # cannot fit: full
