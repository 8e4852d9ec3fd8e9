"""The ``wx.session`` API area."""

from __future__ import annotations

from wechat_kf._resource import APIResource

__all__ = ["SessionAPI"]


class SessionAPI(APIResource):
    """The ``wx.session`` API area."""
