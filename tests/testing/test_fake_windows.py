"""The fake's service windows follow WINDOW_RULES, and every interaction leaves its push."""

from __future__ import annotations

import pytest

from tests.testing.fake_http import OK, T0, RawAPI, errcode
from wechat_kf import WINDOW_RULES
from wechat_kf.callback import Event, Incoming, TextMessage
from wechat_kf.callback._messages import incoming_from_fields
from wechat_kf.callback._xml import parse_fields
from wechat_kf.testing import FakePush, FakeWeChat

pytestmark = pytest.mark.anyio

SEND = "/cgi-bin/message/custom/send"
USER = "o_user1"
TEXT = {"touser": USER, "msgtype": "text", "text": {"content": "hi"}}


def parsed(push: FakePush) -> Incoming:
    """The push as the SDK's callback side reads it."""
    return incoming_from_fields(parse_fields(push.xml, max_size=65536))


async def sends_allowed(api: RawAPI) -> int:
    """Send until refused; the number accepted (the refusal must be 45047)."""
    accepted = 0
    while (answer := await api.post(SEND, TEXT)) == OK:
        accepted += 1
    assert errcode(answer) == 45047
    return accepted


def test_the_fake_reads_its_numbers_from_the_rules() -> None:
    rules = {rule.window: rule for rule in WINDOW_RULES}
    assert (rules["message"].messages, rules["message"].seconds) == (5, 48 * 3600)
    assert (rules["event"].messages, rules["event"].seconds) == (3, 60)
    fake = FakeWeChat()
    fake.user_says(USER)
    fake.user_follows(USER)
    user = fake.users[USER]
    assert user.message_window is not None
    assert user.message_window.sends_left == 5
    assert user.event_window is not None
    assert user.event_window.sends_left == 3


@pytest.mark.parametrize("event", ["CLICK", "scancode_push", "scancode_waitmsg"])
async def test_the_qualifying_menu_events_open_the_event_window(
    api: RawAPI, wechat: FakeWeChat, event: str
) -> None:
    wechat.user_clicks_menu(USER, "KEY", event=event)
    assert await sends_allowed(api) == 3


@pytest.mark.parametrize(
    "event", ["VIEW", "pic_sysphoto", "pic_photo_or_album", "location_select", "view_miniprogram"]
)
async def test_other_menu_events_open_nothing(api: RawAPI, wechat: FakeWeChat, event: str) -> None:
    wechat.user_clicks_menu(USER, "KEY", event=event)
    assert errcode(await api.post(SEND, TEXT)) == 45015
    assert [push.fields["Event"] for push in wechat.pushes] == [event]


async def test_a_follow_and_a_scan_open_the_event_window(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.user_follows(USER, qr_scene="campaign7")
    assert await sends_allowed(api) == 3
    wechat.clock.advance(61)
    wechat.user_scans(USER, "42")
    assert await sends_allowed(api) == 3
    assert [(p.fields["Event"], p.fields["EventKey"]) for p in wechat.pushes] == [
        ("subscribe", "qrscene_campaign7"),
        ("SCAN", "42"),
    ]


async def test_a_msgmenu_click_is_a_menu_click_not_a_user_message(
    api: RawAPI, wechat: FakeWeChat
) -> None:
    """A click in a msgmenu message arrives as text with bizmsgmenuid and grants 3 in 1 minute,
    not the 5 in 48 h of a user message."""
    record = wechat.user_clicks_menu_item(USER, "101", "yes")
    assert record.text == "yes"
    assert wechat.users[USER].message_window is None
    assert await sends_allowed(api) == 3
    wechat.clock.advance(60)
    assert errcode(await api.post(SEND, TEXT)) == 45015


async def test_windows_tie_break_by_name(api: RawAPI, wechat: FakeWeChat) -> None:
    """Two windows ending together: "event" is spent before "message" (the ledger's order)."""
    wechat.user_says(USER)
    wechat.clock.advance(48 * 3600 - 60)
    wechat.user_follows(USER)
    assert await api.post(SEND, TEXT) == OK
    user = wechat.users[USER]
    assert user.event_window is not None
    assert user.event_window.sends_left == 2
    assert user.message_window is not None
    assert user.message_window.sends_left == 5


def test_each_interaction_leaves_the_push_wechat_would_send(wechat: FakeWeChat) -> None:
    wechat.user_says(USER, "hello")
    wechat.user_says(USER, "again")
    wechat.user_clicks_menu_item(USER, "7", "item")
    wechat.user_clicks_menu(USER, "BUY")
    pushes = list(wechat.pushes)
    assert all(isinstance(push, FakePush) and push.openid == USER for push in pushes)
    first, second, item, click = (parsed(p) for p in pushes)
    assert isinstance(first, TextMessage)
    assert first.content == "hello"
    assert first.to_user == wechat.original_id
    assert first.create_time.timestamp() == T0
    assert isinstance(second, TextMessage)
    assert second.msg_id == first.msg_id + 1
    assert isinstance(item, TextMessage)
    assert item.bizmsgmenuid == "7"
    assert isinstance(click, Event)
    assert (click.event, click.raw["EventKey"]) == ("CLICK", "BUY")


def test_pushes_carry_whole_seconds(wechat: FakeWeChat) -> None:
    wechat.clock.advance(0.75)
    wechat.user_says(USER)
    assert wechat.pushes[-1].fields["CreateTime"] == T0
    assert b"<CreateTime>1700000000</CreateTime>" in wechat.pushes[-1].xml
