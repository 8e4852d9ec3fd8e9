"""The fake's customer-service state and the helpers tests drive it with (mixed into FakeWeChat).

Tests play the other side of the conversation: ``fake.add_agent(...)`` seeds an agent,
``fake.user_says(openid)`` is a follower writing in (which opens the response window),
``fake.agent_accepts(...)`` an agent picking a user from the queue. Each user interaction also
leaves the push WeChat would send to your server in ``fake.pushes``. The windows follow
:data:`~wechat_kf.WINDOW_RULES`, the rules the SDK's ledger applies. The HTTP routes in
``_kf_routes``, ``_session_routes``, ``_message_routes`` and ``_records_routes`` apply
WeChat's rules to the same state.
"""

from __future__ import annotations

import collections
import re
import threading
from typing import Any, Final

from wechat_kf._window_rules import EVENT_INTERACTIONS, WINDOW_RULES, Interaction, rule_for
from wechat_kf.records import OperCode
from wechat_kf.testing._core import FakeClock
from wechat_kf.testing._state import (
    FakeAgent,
    FakePush,
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
#: The first ``MsgId`` of a push the fake makes (WeChat's are 64-bit).
FIRST_MSG_ID: Final = 24_000_000_000_000_001
#: Pushes kept in ``fake.pushes`` (the oldest go first).
PUSH_LOG_LIMIT: Final = 100_000
_STATUSES: Final = (0, 1, 2, 3)


class CustomerService:
    """Agents, sessions, the waiting queue, users' response windows and chat records.

    Attributes (read them to assert; all mutation happens under ``lock``):
        agents: ``kf_account -> FakeAgent``.
        sessions: ``openid -> FakeSession`` for every user an agent serves now.
        waiting: ``openid -> FakeWaitCase``, oldest first: the queue ``getwaitcase`` shows.
        users: ``openid -> FakeUser``: response windows, typing state, messages sent.
        records: every chat record, in ``id`` order (``getmsglist`` pages on them).
        pushes: the pushes WeChat would have sent to your server, oldest first
            (:class:`FakePush`; at most ``PUSH_LOG_LIMIT``).
        original_id: the account's original id (``gh_...``), the pushes' ``ToUserName``.
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
    pushes: collections.deque[FakePush]
    original_id: str
    legacy_waitcase_shape: bool
    records_msgid_inclusive: bool

    def _init_customer_service(self) -> None:
        self.agents = {}
        self.sessions = {}
        self.waiting = {}
        self.users = {}
        self.records = []
        self.pushes = collections.deque(maxlen=PUSH_LOG_LIMIT)
        self.original_id = "gh_0123456789ab"
        self.legacy_waitcase_shape = False
        self.records_msgid_inclusive = True
        self._next_kf_id = FIRST_KF_ID
        self._next_record_id = 1
        self._next_msg_id = FIRST_MSG_ID

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
        return self._user_message(openid, text, Interaction.MESSAGE, queue=queue)

    def user_clicks_menu_item(
        self, openid: str, item_id: str, text: str = "menu item", *, queue: bool = False
    ) -> FakeRecord:
        """A user clicks an item of a ``msgmenu`` message the account sent.

        WeChat pushes it as a text message carrying ``bizmsgmenuid``, but it counts as a menu
        click: 3 agent messages within 1 minute, not the 5 of a user message. Recorded like a
        message (``text`` is the item's content). Returns the record.
        """
        return self._user_message(
            openid, text, Interaction.MENU_CLICK, queue=queue, bizmsgmenuid=item_id
        )

    def _user_message(
        self, openid: str, text: str, kind: Interaction, *, queue: bool, **extra: str
    ) -> FakeRecord:
        _check_openid(openid)
        with self.lock:
            now = self.clock.now()
            user = self.user(openid)
            self._open_window(user, kind, now)
            user.last_exchange = now
            msg_id = self._next_msg_id
            self._next_msg_id += 1
            self._push(openid, now, "text", Content=text, MsgId=msg_id, **extra)
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

    def user_follows(self, openid: str, *, qr_scene: str | None = None) -> None:
        """A user follows (``subscribe``; by a QR code with ``qr_scene``): 3 agent messages
        allowed within 1 minute."""
        fields = {} if qr_scene is None else {"EventKey": f"qrscene_{qr_scene}"}
        self.user_event(openid, "subscribe", **fields)

    def user_scans(self, openid: str, scene: str = "1") -> None:
        """A follower scans one of the account's QR codes (``SCAN``): 3 messages in 1 minute."""
        self.user_event(openid, "SCAN", EventKey=scene)

    def user_clicks_menu(
        self, openid: str, key: str = "MENU_CLICK", *, event: str = "CLICK"
    ) -> None:
        """A user uses the account's custom menu: pushes ``event`` with ``EventKey`` ``key``.

        Only ``CLICK``, ``scancode_push`` and ``scancode_waitmsg`` open a window (3 agent
        messages within 1 minute); ``VIEW``, ``pic_sysphoto``, ``location_select``... open none.
        (A click in a ``msgmenu`` message is :meth:`user_clicks_menu_item`.)
        """
        self.user_event(openid, event, EventKey=key)

    def user_event(self, openid: str, event: str, **fields: str) -> None:
        """A user triggers ``event``: the push is recorded, and a window opens if the event is
        one of those :data:`~wechat_kf.WINDOW_RULES` names (``fields`` go into the push)."""
        _check_openid(openid)
        with self.lock:
            now = self.clock.now()
            kind = EVENT_INTERACTIONS.get(event.lower())
            if kind is not None:
                self._open_window(self.user(openid), kind, now)
            self._push(openid, now, "event", Event=event, **fields)

    def _open_window(self, user: FakeUser, kind: Interaction, now: float) -> None:
        rule = rule_for(kind, WINDOW_RULES)
        if rule is not None:
            user.windows[rule.window] = ServiceWindow(
                until=now + rule.seconds, sends_left=rule.messages
            )

    def _push(self, openid: str, now: float, msg_type: str, **fields: str | int) -> None:
        self.pushes.append(
            FakePush(
                openid=openid,
                fields={
                    "ToUserName": self.original_id,
                    "FromUserName": openid,
                    "CreateTime": int(now),
                    "MsgType": msg_type,
                    **fields,
                },
            )
        )

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
