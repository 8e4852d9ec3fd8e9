"""The client-side checks one by one: each limit at its boundary, and the error users get.

``ValidationError`` is what a bad call raises before any request: its ``field``, ``limit``,
``value`` and text are what users read and match on, so each is pinned here.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import attrs
import pytest

from wechat_kf import ValidationError
from wechat_kf import _validation as check


def refused(call: Any, *args: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        call(*args)
    error = info.value
    assert isinstance(error, ValueError)
    assert str(error) == f"{error.field}: {error.limit}"
    return error


KF_LIMIT = (
    "must be prefix@wechatid: a prefix of 1-10 letters, digits or underscores, '@', and the "
    "account's WeChat ID of at most 30 characters (got {!r})"
)


@pytest.mark.parametrize(
    "value", ["a@b", "A_9@wx", "p" * 10 + "@" + "w" * 30, "kf_1@gh_中文", "x@a.b-c"]
)
def test_kf_account_accepts_prefix_at_wechat_id(value: str) -> None:
    assert check.kf_account(value) is value


@pytest.mark.parametrize(
    "value",
    ["", "@wx", "a@", "p" * 11 + "@wx", "a@" + "w" * 31, "a-b@wx", "a@b@c", "a@b c", "a@b\n", 7],
)
def test_kf_account_refusals_name_the_rule_and_the_value(value: object) -> None:
    error = refused(check.kf_account, value)
    assert (error.field, error.value) == ("kf_account", value)
    assert error.limit == KF_LIMIT.format(value)
    assert refused(check.kf_account, value, "to").field == "to"


def test_nickname_is_one_to_sixteen_characters() -> None:
    assert check.nickname("a") == "a"
    assert check.nickname("中" * 16) == "中" * 16
    for value, got in [("", "0"), ("x" * 17, "17"), (None, "NoneType"), (16, "int")]:
        error = refused(check.nickname, value)
        assert (error.field, error.value) == ("nickname", value)
        assert error.limit == f"must be 1-16 characters (got {got})"
    assert refused(check.nickname, "", "name").field == "name"
    assert check.NICKNAME_MAX == 16


def test_openid_is_non_empty_without_whitespace_at_most_128() -> None:
    assert check.openid("o" * 128) == "o" * 128
    assert check.openid("oAbC-_9") == "oAbC-_9"
    for value in ["", "o" * 129, "o user", "o\tuser", "o\u3000", " o", 5, None]:
        error = refused(check.openid, value)
        assert (error.field, error.value) == ("openid", value)
        assert error.limit == "must be a non-empty openid of at most 128 characters"
    assert refused(check.openid, "", "touser").field == "touser"
    assert check.OPENID_MAX == 128


@pytest.mark.parametrize(
    ("value", "code", "position"),
    [
        ("\x00", 0x0, 0),
        ("ab\x08", 0x8, 2),
        ("\x0b", 0xB, 0),
        ("x\x1f", 0x1F, 1),
        ("\ud800", 0xD800, 0),
    ],
)
def test_text_refuses_what_json_cannot_carry(value: str, code: int, position: int) -> None:
    error = refused(check.text, value, "content")
    assert (error.field, error.value) == ("content", value)
    assert error.limit == (
        f"must not contain the control or surrogate character U+{code:04X} at position "
        f"{position} (WeChat refuses \\u escapes: errcode 40033)"
    )


def test_text_takes_tabs_newlines_and_every_other_character() -> None:
    value = "a\tb\nc\rd 中文 😀 \x7f \ue000"
    assert check.text(value, "content") is value
    assert check.text("", "content") == ""
    error = refused(check.text, b"bytes", "content")
    assert (error.field, error.limit, error.value) == ("content", "must be a string", b"bytes")


def test_non_empty_needs_something_besides_whitespace() -> None:
    assert check.non_empty(" x ", "title") == " x "
    for value in ["", " \n\t", None, 3]:
        error = refused(check.non_empty, value, "title")
        assert (error.field, error.limit, error.value) == (
            "title",
            "must be a non-empty string",
            value,
        )
    assert refused(check.non_empty, "a\x00", "title").limit.startswith("must not contain")


def test_json_texts_checks_keys_and_values_and_names_the_path() -> None:
    check.json_texts({"a": ["x", {"b": "y"}, 1, None, True]}, "data")
    error = refused(check.json_texts, {"a": ["x", {"b": "y\x01"}]}, "data")
    assert (error.field, error.value) == ("data.a[1].b", "y\x01")
    error = refused(check.json_texts, {"a": {"k\x02": 1}}, "data")
    assert (error.field, error.value) == ("data.a", "k\x02")  # a key: the path of its object
    error = refused(check.json_texts, ("ok", "\x03"), "data")
    assert error.field == "data[1]"
    assert refused(check.json_texts, "\x04", "data").field == "data"


def test_int_range_is_inclusive() -> None:
    assert check.int_range(1, "number", 1, 10_000) == 1
    assert check.int_range(10_000, "number", 1, 10_000) == 10_000
    for value in [0, 10_001, True, 5.0, "5", None]:
        error = refused(check.int_range, value, "number", 1, 10_000)
        assert (error.field, error.value) == ("number", value)
        assert error.limit == "must be an integer from 1 to 10000"


class _NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


def test_unix_seconds_takes_aware_datetimes_and_non_negative_ints() -> None:
    assert check.unix_seconds(0, "start") == 0
    assert check.unix_seconds(1_700_000_000, "start") == 1_700_000_000
    aware = datetime(2023, 11, 14, 22, 13, 20, 900_000, tzinfo=timezone(timedelta(hours=8)))
    assert check.unix_seconds(aware, "start") == 1_699_971_200
    for naive in [datetime(2023, 11, 14), datetime(2023, 11, 14, tzinfo=_NoOffset())]:
        error = refused(check.unix_seconds, naive, "start")
        assert (error.field, error.value) == ("start", naive)
        assert error.limit == (
            "must be a timezone-aware datetime (e.g. datetime.now(timezone.utc)) or int unix "
            "seconds; a naive datetime is ambiguous"
        )
    for value in [-1, True, 1.5, "1700000000", None]:
        error = refused(check.unix_seconds, value, "end")
        assert (error.field, error.value) == ("end", value)
        assert error.limit == "must be an aware datetime or int unix seconds >= 0"


@attrs.frozen
class Model:
    title: str = attrs.field(validator=check.required)
    note: str | None = attrs.field(default=None, validator=check.optional_text)
    data: Any = attrs.field(default=None, validator=check.json_payload)
    items: list[int] = attrs.field(factory=lambda: [1], validator=check.length(1, 3))
    pair: tuple[int, ...] = attrs.field(default=(1, 2), validator=check.length(2, 2))


def test_model_validators_name_class_and_field() -> None:
    Model("t", note=None, data={"k": ["v"]}, items=[1, 2, 3])
    error = refused(Model, " ")
    assert (error.field, error.limit, error.value) == (
        "Model.title",
        "must be a non-empty string",
        " ",
    )
    error = refused(lambda: Model("t", note=5))
    assert (error.field, error.limit, error.value) == ("Model.note", "must be a string or None", 5)
    assert refused(lambda: Model("t", note="\x00")).field == "Model.note"
    assert refused(lambda: Model("t", data={"k": "\x00"})).field == "Model.data.k"


def test_length_says_the_range_or_the_exact_count() -> None:
    # The validators are built here, not at import: each call of check.length() is tested.
    @attrs.frozen
    class Sized:
        items: list[int] = attrs.field(factory=lambda: [1], validator=check.length(1, 3))
        pair: tuple[int, ...] = attrs.field(default=(1, 2), validator=check.length(2, 2))

    Sized(items=[1]), Sized(items=[1, 2, 3])
    for items in ([], [1, 2, 3, 4]):
        error = refused(lambda: Sized(items=items))  # noqa: B023 - called at once
        assert (error.field, error.value) == ("Sized.items", items)
        assert error.limit == f"must hold 1 to 3 item(s) (got {len(items)})"
    error = refused(lambda: Sized(pair=(1,)))
    assert error.limit == "must hold exactly 2 item(s) (got 1)"
    assert (error.field, error.value) == ("Sized.pair", (1,))
