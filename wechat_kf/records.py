"""The ``wx.records`` API area."""

from __future__ import annotations

from wechat_kf._resource import APIResource

__all__ = ["RecordsAPI"]


class RecordsAPI(APIResource):
    """The ``wx.records`` API area."""
