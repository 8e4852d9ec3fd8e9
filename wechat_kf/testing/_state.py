"""The fake's customer-service world as plain records: agents, sessions, the queue, users, records.

These are what ``FakeWeChat.agents``, ``.sessions``, ``.waiting``, ``.users`` and ``.records``
hold. Tests read them to assert and may edit them to set up odd states; the rules that change
them live on :class:`~wechat_kf.testing.FakeWeChat` and in the route modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from wechat_kf.callback._xml import build_xml

__all__ = [
    "FakeAgent",
    "FakePush",
    "FakeRecord",
    "FakeSession",
    "FakeUser",
    "FakeWaitCase",
    "ServiceWindow",
]

#: ``Typing`` needs an exchange with the user within this many seconds.
TYPING_EXCHANGE_WINDOW: Final = 30.0
#: A ``Typing`` state lasts this long and cannot be re-sent meanwhile.
TYPING_DURATION: Final = 15.0
#: An agent invitation stays open this long.
INVITE_LIFETIME: Final = 7 * 86400


@attrs.define(kw_only=True)
class FakeAgent:
    """An agent account (客服账号) as the fake keeps it.

    ``kf_wx`` is the personal WeChat ID the account is bound to (``None``: not bound). An
    invitation is ``invite_wx`` + ``invite_expire_time`` + ``invite_status`` (``"waiting"`` or
    ``"rejected"``; :meth:`invite_state` also reports ``"expired"``). ``status`` is 0 offline,
    1 web online (older WeChat: 2 mobile, 3 both). ``auto_accept`` is reported, not acted upon.
    """

    kf_account: str
    nickname: str
    kf_id: int
    headimgurl: str = ""
    kf_wx: str | None = None
    invite_wx: str | None = None
    invite_expire_time: int | None = None
    invite_status: str | None = None
    status: int = 0
    auto_accept: int = 0

    @property
    def bound(self) -> bool:
        """Whether a personal WeChat ID is bound to the account."""
        return self.kf_wx is not None

    @property
    def online(self) -> bool:
        """Whether the agent is online (``status != 0``)."""
        return self.status != 0

    @property
    def wire_kf_id(self) -> int | str:
        """``kf_id`` as the fake sends it: a string for even ids, an int for odd ones.

        WeChat's own answers drift between the two; clients must accept both.
        """
        return str(self.kf_id) if self.kf_id % 2 == 0 else self.kf_id

    def invite_state(self, now: float) -> str | None:
        """The invitation's status at ``now``: ``None``, waiting, rejected or expired."""
        expires = self.invite_expire_time
        if self.invite_status == "waiting" and expires is not None and now > expires:
            return "expired"
        return self.invite_status

    def has_pending_invite(self, now: float) -> bool:
        """Whether an invitation is waiting for an answer and has not expired."""
        return self.invite_state(now) == "waiting"


@attrs.define(kw_only=True)
class FakeSession:
    """A user being served by an agent; ``createtime`` is unix seconds."""

    openid: str
    kf_account: str
    createtime: int


@attrs.define(kw_only=True)
class FakeWaitCase:
    """A user waiting in the queue: since ``createtime``, last wrote at ``latest_time``."""

    openid: str
    createtime: int
    latest_time: int
    kf_account: str = ""


@attrs.define(kw_only=True)
class ServiceWindow:
    """A response window: the agent may send ``sends_left`` more messages until ``until``."""

    until: float
    sends_left: int

    def is_open(self, now: float) -> bool:
        """Whether the window has not ended yet (quota aside)."""
        return now < self.until


@attrs.define(kw_only=True)
class FakeUser:
    """A follower as the message rules see them.

    ``windows`` holds the user's response windows by the name of their rule in
    :data:`~wechat_kf.WINDOW_RULES`: ``"message"`` opens on each user message (48 h, 5 sends),
    ``"event"`` on a menu click, follow or QR scan (1 minute, 3 sends); a send spends from the
    open window ending first (ties: by name). ``last_exchange`` is the last user message or
    successful send; ``typing_since`` the last ``Typing`` not yet cancelled. ``sent`` holds the
    decoded bodies of the messages successfully sent to the user, oldest first.
    """

    openid: str
    windows: dict[str, ServiceWindow] = attrs.Factory(dict)
    last_exchange: float | None = None
    typing_since: float | None = None
    sent: list[dict[str, Any]] = attrs.Factory(list)

    @property
    def message_window(self) -> ServiceWindow | None:
        """The window the user's last message opened (``windows["message"]``)."""
        return self.windows.get("message")

    @property
    def event_window(self) -> ServiceWindow | None:
        """The window the user's last menu click, follow or scan opened (``windows["event"]``)."""
        return self.windows.get("event")

    def _windows(self, now: float) -> list[ServiceWindow]:
        open_now = [(name, w) for name, w in self.windows.items() if w.is_open(now)]
        return [w for _, w in sorted(open_now, key=_ends)]

    def in_window(self, now: float) -> bool:
        """Whether a response window is open (its quota may be used up)."""
        return bool(self._windows(now))

    def window_error(self, now: float) -> int | None:
        """The errcode a send gets now: 45015 no open window, 45047 quota used, else None."""
        windows = self._windows(now)
        if not windows:
            return 45015
        if all(w.sends_left <= 0 for w in windows):
            return 45047
        return None

    def spend(self, now: float) -> None:
        """Use one send from the open window that ends first (call after ``window_error``)."""
        for window in self._windows(now):
            if window.sends_left > 0:
                window.sends_left -= 1
                return

    def is_typing(self, now: float) -> bool:
        """Whether a ``Typing`` state is still on."""
        since = self.typing_since
        return since is not None and now - since < TYPING_DURATION


def _ends(named: tuple[str, ServiceWindow]) -> tuple[float, str]:
    return (named[1].until, named[0])


@attrs.frozen(kw_only=True)
class FakePush:
    """A push the fake made as WeChat would send it to your server (plaintext XML fields).

    ``FakeWeChat.pushes`` holds one per user interaction, oldest first: feed :attr:`xml` to
    your callback endpoint, or leave some out to play a push that never arrived.
    """

    openid: str
    fields: Mapping[str, str | int]

    @property
    def xml(self) -> bytes:
        """The push body: ``<xml>`` with one element per field, text in CDATA."""
        return build_xml(self.fields)


@attrs.frozen(kw_only=True)
class FakeRecord:
    """One chat record (``getmsglist``); ``id`` is what ``msgid`` pages on, from 1.

    ``opercode`` is the code as sent on the wire; :class:`wechat_kf.OperCode` names them.
    """

    id: int
    openid: str
    opercode: int
    text: str
    time: int
    worker: str = ""
