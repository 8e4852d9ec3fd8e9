"""The fake's customer-service state and the helpers tests drive it with (mixed into FakeWeChat).

Tests play the other side of the conversation: ``fake.add_agent(...)`` seeds an agent,
``fake.user_says(openid)`` is a follower writing in (which opens the response window),
``fake.agent_accepts(...)`` an agent picking a user from the queue. The HTTP routes in
``_kf_routes``, ``_session_routes``, ``_message_routes`` and ``_records_routes`` apply
WeChat's rules to the same state.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Final

from wechat_kf.records import OperCode
from wechat_kf.testing._core import FakeClock
from wechat_kf.testing._state import (
    EVENT_WINDOW,
    MESSAGE_WINDOW,
    FakeAgent,
    FakeRecord,
    FakeSession,
    FakeUser,
    FakeWaitCase,
    ServiceWindow,
)

__all__ = ["OPENID", "CustomerService"]

#: What the fake accepts as an openid (WeChat's are 28 characters of this alphabet).
OPENID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The first ``kf_id`` WeChat hands out.
FIRST_KF_ID: Final = 1001
_STATUSES: Final = (0, 1, 2, 3)


class CustomerService:
    """Agents, sessions, the waiting queue, users' response windows and chat records.

    Attributes (read them to assert; all mutation happens under ``lock``):
        agents: ``kf_account -> FakeAgent``.
        sessions: ``openid -> FakeSession`` for every user an agent serves now.
        waiting: ``openid -> FakeWaitCase``, oldest first: the queue ``getwaitcase`` shows.
        users: ``openid -> FakeUser``: response windows, typing state, messages sent.
        records: every chat record, in ``id`` order (``getmsglist`` pages on them).
        legacy_waitcase_shape: answer ``getwaitcase`` entries in the older shape
            ``{openid, kf_account, createtime}`` instead of ``{latest_time, openid}``.
        records_msgid_inclusive: ``getmsglist`` answers ``msgid`` = the id of the last record
            returned (True, so the next page repeats it) or that id + 1 (False).
    """

    clock: FakeClock
    lock: threading.RLock
    agents: dict[str, FakeAgent]
    sessions: dict[str, FakeSession]
    waiting: dict[str, FakeWaitCase]
    users: dict[str, FakeUser]
    records: list[FakeRecord]
    legacy_waitcase_shape: bool
    records_msgid_inclusive: bool

    def _init_customer_service(self) -> None:
        self.agents = {}
        self.sessions = {}
        self.waiting = {}
        self.users = {}
        self.records = []
        self.legacy_waitcase_shape = False
        self.records_msgid_inclusive = True
        self._next_kf_id = FIRST_KF_ID
        self._next_record_id = 1

    # ------------------------------------------------------------------ agents

    def add_agent(
        self,
        kf_account: str,
        nickname: str | None = None,
        *,
        bound_to: str | None = "agent_wx",
        online: bool = False,
        auto_accept: int = 0,
    ) -> FakeAgent:
        """Create an agent account directly, skipping the format and count limits of ``add``.

        Args:
            kf_account: the account, e.g. ``"alice@gh_test"``; must not exist yet.
            nickname: shown to users; defaults to the part before ``@``.
            bound_to: the personal WeChat ID the account is bound to; ``None``: not bound.
            online: put the agent online (web, ``status=1``); needs ``bound_to``.
            auto_accept: the agent's ``auto_accept`` setting, as ``getonlinekflist`` shows it.

        Raises:
            ValueError: the account exists, or ``online`` without ``bound_to``.
        """
        with self.lock:
            if kf_account in self.agents:
                raise ValueError(f"agent {kf_account!r} already exists")
            if online and bound_to is None:
                raise ValueError("an agent must be bound to a WeChat ID to be online")
            agent = self._new_agent(kf_account, nickname or kf_account.partition("@")[0])
            agent.kf_wx = bound_to
            agent.status = 1 if online else 0
            agent.auto_accept = auto_accept
            return agent

    def _new_agent(self, kf_account: str, nickname: str) -> FakeAgent:
        agent = FakeAgent(kf_account=kf_account, nickname=nickname, kf_id=self._next_kf_id)
        self._next_kf_id += 1
        self.agents[kf_account] = agent
        return agent

    def _agent(self, kf_account: str) -> FakeAgent:
        agent = self.agents.get(kf_account)
        if agent is None:
            raise KeyError(f"no agent {kf_account!r}")
        return agent

    def set_online(self, kf_account: str, status: int = 1) -> None:
        """Set an agent's status: 0 offline, 1 web online (older WeChat: 2 mobile, 3 both).

        Raises:
            KeyError: no such agent.
            ValueError: an unknown status, or online while not bound to a WeChat ID.
        """
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, not {status!r}")
        with self.lock:
            agent = self._agent(kf_account)
            if status and not agent.bound:
                raise ValueError(f"agent {kf_account!r} is not bound to a WeChat ID")
            agent.status = status

    def accept_invite(self, kf_account: str) -> None:
        """The invited WeChat user accepts: the account becomes bound to ``invite_wx``.

        Raises:
            KeyError: no such agent.
            ValueError: no invitation is waiting (none, rejected or expired).
        """
        with self.lock:
            agent = self._pending_invite(kf_account)
            agent.kf_wx = agent.invite_wx
            agent.invite_wx = agent.invite_expire_time = agent.invite_status = None

    def reject_invite(self, kf_account: str) -> None:
        """The invited WeChat user declines: ``invite_status`` becomes ``"rejected"``.

        Raises:
            KeyError: no such agent.
            ValueError: no invitation is waiting (none, rejected or expired).
        """
        with self.lock:
            self._pending_invite(kf_account).invite_status = "rejected"

    def _pending_invite(self, kf_account: str) -> FakeAgent:
        agent = self._agent(kf_account)
        if not agent.has_pending_invite(self.clock.now()):
            raise ValueError(f"agent {kf_account!r} has no waiting invitation")
        return agent

    def sessions_of(self, kf_account: str) -> list[FakeSession]:
        """The sessions an agent serves now, oldest first."""
        with self.lock:
            return [s for s in self.sessions.values() if s.kf_account == kf_account]

    # ------------------------------------------------------------------ users

    def user(self, openid: str) -> FakeUser:
        """The fake's state for ``openid`` (created on first use)."""
        with self.lock:
            user = self.users.get(openid)
            if user is None:
                user = self.users[openid] = FakeUser(openid=openid)
            return user

    def user_says(self, openid: str, text: str = "hi", *, queue: bool = False) -> FakeRecord:
        """A follower sends a message: opens a 48 h response window for 5 agent messages.

        Records it (opercode 2003 with the serving agent as worker, else 2001). With
        ``queue=True`` a user nobody serves joins the waiting queue (record 1000) unless already
        in it; a waiting user's ``latest_time`` moves on each message. Returns the record.
        """
        _check_openid(openid)
        with self.lock:
            now = self.clock.now()
            user = self.user(openid)
            user.message_window = ServiceWindow(
                until=now + MESSAGE_WINDOW[0], sends_left=MESSAGE_WINDOW[1]
            )
            user.last_exchange = now
            session = self.sessions.get(openid)
            if session is not None:
                return self.add_record(
                    openid, OperCode.AGENT_RECEIVED_MESSAGE, text, session.kf_account
                )
            record = self.add_record(openid, OperCode.ACCOUNT_RECEIVED_MESSAGE, text)
            case = self.waiting.get(openid)
            if case is not None:
                case.latest_time = int(now)
            elif queue:
                self.waiting[openid] = FakeWaitCase(
                    openid=openid, createtime=int(now), latest_time=int(now)
                )
                self.add_record(openid, OperCode.SESSION_CREATED_UNACCEPTED, "")
            return record

    def user_follows(self, openid: str) -> None:
        """A user follows (or scans a QR code): 3 agent messages allowed within 1 minute."""
        self._event(openid)

    def user_clicks_menu(self, openid: str, key: str = "MENU_CLICK") -> None:
        """A user clicks the account's custom menu: 3 agent messages allowed within 1 minute.

        (A click in a ``msgmenu`` message arrives as a plain message: use :meth:`user_says`.)
        ``key`` is the menu's EventKey; the fake does not store it.
        """
        self._event(openid)

    def _event(self, openid: str) -> None:
        _check_openid(openid)
        with self.lock:
            window = ServiceWindow(
                until=self.clock.now() + EVENT_WINDOW[0], sends_left=EVENT_WINDOW[1]
            )
            self.user(openid).event_window = window

    def sent_to(self, openid: str) -> list[dict[str, Any]]:
        """The bodies (decoded JSON) of the messages successfully sent to ``openid``."""
        with self.lock:
            user = self.users.get(openid)
            return list(user.sent) if user is not None else []

    # ------------------------------------------------------------------ sessions

    def agent_accepts(self, kf_account: str, openid: str | None = None) -> FakeSession:
        """An agent takes ``openid`` (default: the user waiting longest) from the queue.

        Records opercode 1001 and returns the new session.

        Raises:
            KeyError: no such agent.
            ValueError: the queue is empty, or ``openid`` is not waiting.
        """
        with self.lock:
            self._agent(kf_account)
            if openid is None:
                if not self.waiting:
                    raise ValueError("nobody is waiting")
                openid = next(iter(self.waiting))
            elif openid not in self.waiting:
                raise ValueError(f"{openid!r} is not waiting")
            return self._serve(openid, kf_account, OperCode.SESSION_ACCEPTED)

    def _serve(self, openid: str, kf_account: str, opercode: int, text: str = "") -> FakeSession:
        """Start (or move) ``openid``'s session with ``kf_account``; the user leaves the queue."""
        self.waiting.pop(openid, None)
        session = FakeSession(openid=openid, kf_account=kf_account, createtime=self._now())
        self.sessions[openid] = session
        self.add_record(openid, opercode, text, kf_account)
        return session

    def _end_session(self, openid: str, text: str = "") -> None:
        """Close ``openid``'s session (record 1004)."""
        session = self.sessions.pop(openid)
        self.add_record(openid, OperCode.SESSION_CLOSED, text, session.kf_account)

    # ------------------------------------------------------------------ records

    def add_record(
        self,
        openid: str,
        opercode: int,
        text: str,
        worker: str = "",
        time: int | None = None,
    ) -> FakeRecord:
        """Append a chat record (``time`` defaults to the fake's now); returns it."""
        with self.lock:
            record = FakeRecord(
                id=self._next_record_id,
                openid=openid,
                opercode=int(opercode),
                text=text,
                time=self._now() if time is None else time,
                worker=worker,
            )
            self._next_record_id += 1
            self.records.append(record)
            return record

    def _now(self) -> int:
        return int(self.clock.now())


def _check_openid(openid: str) -> None:
    if not OPENID.fullmatch(openid):
        raise ValueError(f"{openid!r} does not look like an openid")
