"""The base of every API area: a reference to the shared pipeline, and nothing else."""

from __future__ import annotations

from wechat_kf._pipeline import Pipeline

__all__ = ["APIResource"]


class APIResource:
    """One API area (``wx.kf``, ``wx.message``, ...). Holds no HTTP state of its own."""

    __slots__ = ("_pipeline",)

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
