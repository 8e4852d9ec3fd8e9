"""The ``wx.kf`` API area."""

from __future__ import annotations

from wechat_kf._resource import APIResource

__all__ = ["KfAPI"]


class KfAPI(APIResource):
    """The ``wx.kf`` API area."""
