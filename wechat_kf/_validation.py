"""Client-side checks of WeChat's documented limits, run before any request.

Each check raises :class:`~wechat_kf.ValidationError` (also a ``ValueError``) naming the field and
the limit, so a bad call fails at once with a sentence instead of an errcode after a round trip.
"""

from __future__ import annotations

import re
from collections.abc import Sized
from datetime import datetime
from typing import Any, Final

import attrs

from wechat_kf._errors import ValidationError

#: ``prefix@wechatid``: prefix 1-10 of ``[A-Za-z0-9_]``, the account's WeChat ID at most 30.
KF_ACCOUNT: Final = re.compile(r"[A-Za-z0-9_]{1,10}@[^@\s]{1,30}")
NICKNAME_MAX: Final = 16
OPENID_MAX: Final = 128
#: Any whitespace (``\s`` matches exactly what ``str.isspace`` does).
_SPACE: Final = re.compile(r"\s")


def kf_account(value: object, field: str = "kf_account") -> str:
    """A full agent account ``prefix@wechatid``."""
    if not isinstance(value, str) or not KF_ACCOUNT.fullmatch(value):
        raise ValidationError(
            field,
            "must be prefix@wechatid: a prefix of 1-10 letters, digits or underscores, '@', "
            f"and the account's WeChat ID of at most 30 characters (got {value!r})",
            value,
        )
    return value


def nickname(value: object, field: str = "nickname") -> str:
    """An agent nickname: 1-16 characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= NICKNAME_MAX:
        size = len(value) if isinstance(value, str) else type(value).__name__
        raise ValidationError(field, f"must be 1-{NICKNAME_MAX} characters (got {size})", value)
    return value


def openid(value: object, field: str = "openid") -> str:
    """A user's openid: a non-empty string without whitespace."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > OPENID_MAX
        or _SPACE.search(value) is not None
    ):
        raise ValidationError(
            field, f"must be a non-empty openid of at most {OPENID_MAX} characters", value
        )
    return value


#: Characters JSON can only carry as ``\uXXXX`` escapes (WeChat answers 40033) or not at all:
#: C0 controls other than tab, newline and carriage return, and lone surrogates.
_UNSENDABLE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def text(value: object, field: str) -> str:
    """A string WeChat can receive: no control characters (but tab and newlines), no surrogates."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string", value)
    bad = _UNSENDABLE.search(value)
    if bad is not None:
        raise ValidationError(
            field,
            f"must not contain the control or surrogate character U+{ord(bad.group()):04X} "
            f"at position {bad.start()} (WeChat refuses \\u escapes: errcode 40033)",
            value,
        )
    return value


def non_empty(value: object, field: str) -> str:
    """A required, non-empty string WeChat can receive."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string", value)
    return text(value, field)


def json_texts(value: object, field: str) -> None:
    """Every string in a JSON-like payload (keys too) is one WeChat can receive."""
    if isinstance(value, str):
        text(value, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            text(key, field)
            json_texts(item, f"{field}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            json_texts(item, f"{field}[{index}]")


def int_range(value: object, field: str, low: int, high: int) -> int:
    """An integer in ``[low, high]``."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(field, f"must be an integer from {low} to {high}", value)
    return value


def unix_seconds(value: object, field: str) -> int:
    """An aware ``datetime`` or int unix seconds, as int seconds. Naive datetimes are refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                field,
                "must be a timezone-aware datetime (e.g. datetime.now(timezone.utc)) or "
                "int unix seconds; a naive datetime is ambiguous",
                value,
            )
        return int(value.timestamp())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValidationError(field, "must be an aware datetime or int unix seconds >= 0", value)


# ---------------------------------------------------------------- attrs validators for models


def required(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """attrs validator: a non-empty string, the error naming ``Class.field``."""
    non_empty(value, _label(instance, attribute))


def optional_text(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """attrs validator: ``None`` or a string WeChat can receive."""
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationError(_label(instance, attribute), "must be a string or None", value)
    text(value, _label(instance, attribute))


def json_payload(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """attrs validator: a JSON-like payload whose strings WeChat can receive."""
    json_texts(value, _label(instance, attribute))


def length(low: int, high: int) -> Any:
    """attrs validator factory: a sized value with ``low <= len <= high`` items."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Sized) -> None:
        if not low <= len(value) <= high:
            wanted = f"exactly {low}" if low == high else f"{low} to {high}"
            raise ValidationError(
                _label(instance, attribute),
                f"must hold {wanted} item(s) (got {len(value)})",
                value,
            )

    return check


def _label(instance: Any, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__}.{attribute.name}"
