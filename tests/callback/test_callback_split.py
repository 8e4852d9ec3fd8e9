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
