"""Enums that keep values WeChat adds tomorrow instead of failing on them."""

from __future__ import annotations

import enum
from typing import Any


class OpenIntEnum(enum.IntEnum):
    """An ``IntEnum`` where an unknown value becomes a pseudo-member named ``UNKNOWN_<value>``."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member


class OpenStrEnum(str, enum.Enum):
    """A string enum where an unknown value becomes a pseudo-member named ``UNKNOWN``."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        return member

    def __str__(self) -> str:
        return str(self.value)
