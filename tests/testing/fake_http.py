"""Helpers for the fake server's own tests: a frozen clock, raw HTTP with a token, answers."""

from __future__ import annotations

import re
from typing import Any

import httpx

from wechat_kf._pipeline import encode_query
from wechat_kf.testing import FakeClock, FakeWeChat

#: The frozen clock's start: a fixed unix time, so answers can be asserted exactly.
T0 = 1_700_000_000
OK = {"errcode": 0, "errmsg": "ok"}


class FrozenClock(FakeClock):
    """A FakeClock that only moves when told to."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class RawAPI:
    """Raw HTTP calls to the fake, each with a fresh valid token; answers decoded JSON."""

    def __init__(self, client: httpx.AsyncClient, fake: FakeWeChat) -> None:
        self.client = client
        self.fake = fake

    def params(self, **params: str) -> dict[str, str]:
        """``params`` plus a valid ``access_token`` (the clock may have moved past the last)."""
        return {"access_token": self.fake.issue_token(), **params}

    def url(self, path: str, **params: str) -> str:
        """``path?query`` with a valid token, ``@`` unescaped as WeChat expects."""
        return f"{path}?{encode_query(self.params(**params))}"

    async def get(self, path: str, **params: str) -> Any:
        response = await self.client.get(self.url(path, **params))
        assert response.status_code == 200
        return response.json()

    async def post(self, path: str, body: Any, **params: str) -> Any:
        response = await self.client.post(self.url(path, **params), json=body)
        assert response.status_code == 200
        return response.json()


def errcode(answer: Any) -> int:
    """The errcode of an error answer, after checking its exact shape (``errmsg ... rid: x``)."""
    assert set(answer) == {"errcode", "errmsg"}, answer
    if answer["errcode"] != 0:
        assert re.fullmatch(r"[a-z].* rid: [0-9a-f]{24}", answer["errmsg"]), answer
    return int(answer["errcode"])
