"""WeChat's service-window rules, as data, in this one place.

An account may send a customer-service message to a user only inside a window the user opened,
and only so many messages in it. Outside it WeChat answers 45015, past the count 45047. The
rules since WeChat's announcement of 2023-05-30 (new accounts from 2023-06-12, every account by
about August 2023):

=========  ==================================================================  ========  =====
window     opened by                                                           messages  lasts
=========  ==================================================================  ========  =====
message    a message the user sends (text, image, voice, video, location, ...)  5         48 h
event      a custom-menu click (only ``CLICK``, ``scancode_push``,              3         1 min
           ``scancode_waitmsg``) or a click in a ``msgmenu`` message; a
           follow (``subscribe``); a QR-code scan (``SCAN``)
=========  ==================================================================  ========  =====

* A new opening interaction renews its window: the full count again, the full duration from the
  interaction. The two windows are counted apart; a send spends from the open window that ends
  first (on a tie, the first by name) that has messages left.
* A menu click does not grant the user-message quota: a click in a ``msgmenu`` message arrives as
  a text message with ``bizmsgmenuid`` and opens the event window only.
* Before the announcement a user message allowed 20 messages in 48 h, and a payment opened a
  window too; neither holds any more (an older official page still says so: the current one wins).

When WeChat changes the rules again, change :data:`WINDOW_RULES` (and the table above): the
ledger (``wx.windows``) and the fake WeChat (``wechat_kf.testing``) both read it.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from typing import Final

import attrs

__all__ = [
    "EVENT_INTERACTIONS",
    "WINDOW_RULES",
    "Interaction",
    "WindowRule",
    "interaction_of",
    "rule_for",
]


class Interaction(str, enum.Enum):
    """A user's action that opens a service window."""

    #: The user sent a message (any type).
    MESSAGE = "message"
    #: A custom-menu click (``CLICK``, ``scancode_push``, ``scancode_waitmsg``) or a click in a
    #: ``msgmenu`` message.
    MENU_CLICK = "menu_click"
    #: The user followed the account (``subscribe``, also when following by a QR code).
    FOLLOW = "follow"
    #: A follower scanned one of the account's QR codes (``SCAN``).
    QR_SCAN = "qr_scan"


@attrs.frozen(kw_only=True)
class WindowRule:
    """One kind of service window: what opens it, how many messages, for how long.

    ``window`` names it (the ledger keeps one window of each name per user); ``announced`` is
    the date of the WeChat announcement the numbers come from; ``before`` says what held until
    then.
    """

    window: str
    opened_by: frozenset[Interaction]
    messages: int
    duration: datetime.timedelta
    announced: datetime.date
    before: str = ""

    @property
    def seconds(self) -> float:
        """:attr:`duration` in seconds."""
        return self.duration.total_seconds()


#: The rules in force (see the module docstring for the sources and the history).
WINDOW_RULES: Final[tuple[WindowRule, ...]] = (
    WindowRule(
        window="event",
        opened_by=frozenset({Interaction.MENU_CLICK, Interaction.FOLLOW, Interaction.QR_SCAN}),
        messages=3,
        duration=datetime.timedelta(minutes=1),
        announced=datetime.date(2023, 5, 30),
        before="the same (the 2023-05-30 announcement left these unchanged)",
    ),
    WindowRule(
        window="message",
        opened_by=frozenset({Interaction.MESSAGE}),
        messages=5,
        duration=datetime.timedelta(hours=48),
        announced=datetime.date(2023, 5, 30),
        before="20 messages in 48 h; a payment opened a window as well",
    ),
)

#: The push events that open a window (``Event``, compared case-insensitively).
EVENT_INTERACTIONS: Final[Mapping[str, Interaction]] = {
    "click": Interaction.MENU_CLICK,
    "scancode_push": Interaction.MENU_CLICK,
    "scancode_waitmsg": Interaction.MENU_CLICK,
    "subscribe": Interaction.FOLLOW,
    "scan": Interaction.QR_SCAN,
}


def rule_for(kind: Interaction, rules: tuple[WindowRule, ...] = WINDOW_RULES) -> WindowRule | None:
    """The rule of the window ``kind`` opens, or ``None`` if it opens none."""
    for rule in rules:
        if kind in rule.opened_by:
            return rule
    return None


def interaction_of(fields: Mapping[str, str]) -> Interaction | None:
    """The interaction a push (its flat fields: ``MsgType``, ``Event``, ...) is, if any.

    Every ``MsgType`` but ``event`` is a message from the user; a text carrying
    ``bizmsgmenuid`` is a click in a ``msgmenu`` message. Events other than those of
    :data:`EVENT_INTERACTIONS` (``VIEW``, ``location_select``, session events, ...) open nothing.
    """
    msg_type = fields.get("MsgType", "").strip().lower()
    if not msg_type:
        return None
    if msg_type == "event":
        event = fields.get("Event", "")  # pragma: no mutate (any default names no event)
        return EVENT_INTERACTIONS.get(event.strip().lower())
    if msg_type == "text" and fields.get("bizmsgmenuid", "").strip():
        return Interaction.MENU_CLICK
    return Interaction.MESSAGE
