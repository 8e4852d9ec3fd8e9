"""The SDK's one cattrs converter: every model goes to and from the wire through it.

WeChat's JSON drifts: ids arrive as ``"1001"`` or ``1001``, timestamps as int or string, fields
appear and disappear. The hooks registered here tolerate that drift once, for every model, and
turn ``None`` into an absent key on the way out (WeChat wants no ``null``\\s).
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timezone
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn

from wechat_kf._enums import OpenIntEnum, OpenStrEnum
from wechat_kf._errors import MalformedResponseError

__all__ = ["converter", "lenient_str", "strict_int", "structure", "to_datetime", "unstructure"]

T = TypeVar("T")

converter: Final = cattrs.Converter(forbid_extra_keys=False)

#: An integer as WeChat sometimes sends it: a string of ASCII digits.
INTEGER: Final = re.compile(r"-?[0-9]{1,30}")


def strict_int(value: object) -> int:
    """An int, or a string of digits WeChat sent for one (never a bool)."""
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and INTEGER.fullmatch(value.strip()):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def lenient_str(value: object) -> str:
    """Accept str, or an int where WeChat switches the type of an id (``kf_id``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def to_datetime(value: object) -> datetime:
    """Unix seconds (int or numeric string) to an aware UTC ``datetime``."""
    return datetime.fromtimestamp(strict_int(value), tz=timezone.utc)


def _structure_enum(value: object, cls: type[enum.Enum]) -> enum.Enum:
    if issubclass(cls, int):
        value = strict_int(value)
    return cls(value)


converter.register_structure_hook(int, lambda value, _: strict_int(value))
converter.register_structure_hook(str, lambda value, _: lenient_str(value))
converter.register_structure_hook(datetime, lambda value, _: to_datetime(value))
converter.register_unstructure_hook(datetime, lambda value: int(value.timestamp()))
# WeChat sends 0 (or "") for "no time": an optional timestamp of 0 is None.
converter.register_structure_hook_func(
    lambda cls: cls == (datetime | None),
    lambda value, _: None if value in (None, 0, "0", "") else to_datetime(value),
)
# Enums first by singledispatch: an IntEnum would otherwise take the int hook above.
converter.register_structure_hook(OpenIntEnum, _structure_enum)
converter.register_structure_hook(OpenStrEnum, _structure_enum)
converter.register_structure_hook(enum.Enum, _structure_enum)
converter.register_unstructure_hook_factory(
    attrs.has,
    lambda cls: make_dict_unstructure_fn(cls, converter, _cattrs_omit_if_default=True),
)


def structure(payload: Any, cls: type[T]) -> T:
    """Structure a decoded response into ``cls``; any mismatch is a typed error."""
    try:
        return converter.structure(payload, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
        detail = (
            "; ".join(cattrs.transform_error(exc))
            if isinstance(exc, cattrs.BaseValidationError)
            else str(exc)
        )
        raise MalformedResponseError(
            f"response does not match {cls.__name__}: {detail}"[:500]
        ) from exc


def unstructure(value: object) -> Any:
    """Unstructure a model into plain JSON-ready data, omitting unset (default) fields."""
    return converter.unstructure(value)
