"""The ``wx.message`` API area."""

from __future__ import annotations

from wechat_kf._resource import APIResource

__all__ = ["MessageAPI"]


class MessageAPI(APIResource):
    """The ``wx.message`` API area."""
