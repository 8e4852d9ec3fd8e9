"""``wx.session``: session control (会话控制): create, close, get, list, the waiting queue."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs

from wechat_kf import _validation as check
from wechat_kf._converter import converter
from wechat_kf._pipeline import Endpoint
from wechat_kf._resource import APIResource
from wechat_kf._retry import RetryMode

__all__ = ["AgentSession", "KfSession", "SessionAPI", "WaitCase", "WaitingSessions"]

_CREATE: Final = Endpoint("POST", "/customservice/kfsession/create", RetryMode.WRITE)
_CLOSE: Final = Endpoint("POST", "/customservice/kfsession/close", RetryMode.WRITE)
_GET: Final = Endpoint("GET", "/customservice/kfsession/getsession")
_LIST: Final = Endpoint("GET", "/customservice/kfsession/getsessionlist")
_WAITING: Final = Endpoint("GET", "/customservice/kfsession/getwaitcase")


@attrs.frozen(kw_only=True)
class KfSession:
    """A user's session: the agent serving them (``""`` if none) and when it began."""

    kf_account: str = ""
    createtime: datetime | None = None

    @property
    def is_served(self) -> bool:
        """Whether an agent is serving the user now."""
        return bool(self.kf_account)


@attrs.frozen(kw_only=True)
class AgentSession:
    """One user an agent is serving, and since when."""

    openid: str
    createtime: datetime | None = None


@attrs.frozen(kw_only=True)
class WaitCase:
    """A user waiting in the queue, and the time of their latest message."""

    openid: str
    latest_time: datetime | None = None
    #: Older WeChat answers name the agent the user asked for.
    kf_account: str | None = None


@attrs.frozen(kw_only=True)
class WaitingSessions:
    """The waiting queue: ``count`` is the true total, ``cases`` at most the 100 oldest."""

    count: int
    cases: list[WaitCase] = attrs.Factory(list)


@attrs.frozen(kw_only=True)
class _SessionList:
    sessionlist: list[AgentSession] = attrs.Factory(list)


def _structure_wait_case(value: Any, _: type) -> WaitCase:
    # The older shape is {openid, kf_account, createtime}; today's is {openid, latest_time}.
    if isinstance(value, Mapping) and "latest_time" not in value and "createtime" in value:
        value = {**value, "latest_time": value["createtime"]}
    return _wait_case_fn(value, WaitCase)


def _structure_waiting(value: Any, _: type) -> WaitingSessions:
    if not isinstance(value, Mapping):
        raise TypeError("expected a JSON object")
    cases = converter.structure(value.get("waitcaselist") or [], builtins.list[WaitCase])
    count = value.get("count")
    return WaitingSessions(
        count=len(cases) if count is None else converter.structure(count, int), cases=cases
    )


_wait_case_fn = converter.gen_structure_attrs_fromdict(WaitCase)
converter.register_structure_hook(WaitCase, _structure_wait_case)
converter.register_structure_hook(WaitingSessions, _structure_waiting)


class SessionAPI(APIResource):
    """Session control: put a user with an agent, end it, and look at who serves whom."""

    __slots__ = ()

    async def create(self, kf_account: str, openid: str, *, text: str | None = None) -> None:
        """Start a session between an online agent and a user (no error if it already exists).

        ``text`` is an optional note shown to the agent (older API; ignored by newer clients).
        """
        await self._pipeline.call(_CREATE, json=_session_body(kf_account, openid, text))

    async def close(self, kf_account: str, openid: str, *, text: str | None = None) -> None:
        """End the session between ``kf_account`` and the user."""
        await self._pipeline.call(_CLOSE, json=_session_body(kf_account, openid, text))

    async def get(self, openid: str) -> KfSession:
        """Who serves the user now (``kf_account == ""`` when nobody does)."""
        return await self._pipeline.call(
            _GET, query={"openid": check.openid(openid)}, into=KfSession
        )

    async def list(self, kf_account: str) -> builtins.list[AgentSession]:
        """The users ``kf_account`` is serving now."""
        answer = await self._pipeline.call(
            _LIST, query={"kf_account": check.kf_account(kf_account)}, into=_SessionList
        )
        return answer.sessionlist

    async def waiting(self) -> WaitingSessions:
        """The queue of users waiting for an agent (true ``count``, at most 100 ``cases``)."""
        return await self._pipeline.call(_WAITING, into=WaitingSessions)


def _session_body(kf_account: str, openid: str, text: str | None) -> dict[str, str]:
    body = {"kf_account": check.kf_account(kf_account), "openid": check.openid(openid)}
    if text is not None:
        body["text"] = check.non_empty(text, "text")
    return body
