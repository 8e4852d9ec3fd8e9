"""The fake's message endpoints over raw HTTP: payload rules, the response window, typing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.testing.fake_http import OK, T0, RawAPI, errcode
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

SEND = "/cgi-bin/message/custom/send"
TYPING = "/cgi-bin/message/custom/typing"
USER = "o_user1"
HOUR = 3600


def msg(msgtype: str, payload: Any, **extra: Any) -> dict[str, Any]:
    return {"touser": USER, "msgtype": msgtype, msgtype: payload, **extra}


def text(content: str = "hello", **extra: Any) -> dict[str, Any]:
    return msg("text", {"content": content}, **extra)


VALID = {
    "text": (text("你好 <a href='https://x'>x</a>"), "你好 <a href='https://x'>x</a>"),
    "image": (msg("image", {"media_id": "M"}), "[image]"),
    "voice": (msg("voice", {"media_id": "M"}), "[voice]"),
    "video": (msg("video", {"media_id": "M", "thumb_media_id": "T", "title": "t"}), "[video]"),
    "video-documented": (
        msg("video", {"media_id": "M", "title": "t", "description": "d"}),
        "[video]",
    ),
    "music": (
        msg("music", {"musicurl": "u", "hqmusicurl": "h", "thumb_media_id": "T"}),
        "[music]",
    ),
    "news": (msg("news", {"articles": [{"title": "t", "url": "u", "picurl": "p"}]}), "[news]"),
    "mpnews": (msg("mpnews", {"media_id": "M"}), "[mpnews]"),
    "mpnewsarticle": (msg("mpnewsarticle", {"article_id": "A"}), "[mpnewsarticle]"),
    "msgmenu": (
        msg("msgmenu", {"head_content": "?", "list": [{"id": "101", "content": "yes"}]}),
        "[msgmenu]",
    ),
    "wxcard": (msg("wxcard", {"card_id": "C"}), "[wxcard]"),
    "miniprogrampage": (
        msg(
            "miniprogrampage",
            {"title": "t", "appid": "wxapp", "pagepath": "p", "thumb_media_id": "T"},
        ),
        "[miniprogrampage]",
    ),
    "as-agent": (text("hi", customservice={"kf_account": "a@gh"}), "hi"),
    "ai-flag": (text("hi", aimsgcontext={"is_ai_msg": 1}), "hi"),
}


@pytest.mark.parametrize("case", VALID)
async def test_valid_sends_are_recorded_and_kept(
    api: RawAPI, wechat: FakeWeChat, case: str
) -> None:
    body, record_text = VALID[case]
    wechat.add_agent("a@gh")
    wechat.user_says(USER)
    for media_id in ("M", "T"):  # materials the fake holds (else 40007)
        wechat.add_media(media_id=media_id, permanent=True)
    assert await api.post(SEND, body) == OK
    assert wechat.sent_to(USER) == [body]
    last = wechat.records[-1]
    worker = "a@gh" if "customservice" in body else ""
    assert (last.opercode, last.openid, last.text, last.worker, last.time) == (
        2002,
        USER,
        record_text,
        worker,
        T0,
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({**text(), "touser": ""}, 40003, id="touser-empty"),
        pytest.param({k: v for k, v in text().items() if k != "touser"}, 40003, id="no-touser"),
        pytest.param({**text(), "touser": "not an openid"}, 40003, id="touser-spaces"),
        pytest.param({**text(), "touser": 12}, 40003, id="touser-int"),
        pytest.param(msg("sticker", {"media_id": "M"}), 40008, id="unknown-type"),
        pytest.param({"touser": USER, "text": {"content": "x"}}, 40008, id="no-msgtype"),
        pytest.param({"touser": USER, "msgtype": "text"}, 40008, id="no-payload"),
        pytest.param(msg("text", "hello"), 40008, id="payload-not-object"),
        pytest.param(text(""), 44004, id="text-empty"),
        pytest.param(msg("text", {}), 44004, id="text-missing"),
        pytest.param(text("x" * 2048), 0, id="text-2048-bytes"),
        pytest.param(text("x" * 2049), 45002, id="text-2049-bytes"),
        pytest.param(text("字" * 682 + "xx"), 0, id="text-2048-utf8"),
        pytest.param(text("字" * 683), 45002, id="text-2049-utf8"),
        pytest.param(msg("image", {"media_id": ""}), 40007, id="image-empty"),
        pytest.param(msg("voice", {}), 40007, id="voice-missing"),
        pytest.param(msg("mpnews", {}), 40007, id="mpnews-missing"),
        pytest.param(msg("video", {"media_id": "M"}), 0, id="video-no-thumb"),
        pytest.param(msg("video", {"title": "t"}), 40007, id="video-no-media"),
        pytest.param(
            msg("video", {"media_id": "M", "thumb_media_id": ""}), 40007, id="video-empty-thumb"
        ),
        pytest.param(msg("music", {"musicurl": "u", "hqmusicurl": "h"}), 40007, id="music-thumb"),
        pytest.param(msg("music", {"hqmusicurl": "h", "thumb_media_id": "T"}), 47001, id="music"),
        pytest.param(msg("news", {"articles": []}), 44003, id="news-empty"),
        pytest.param(msg("news", {"articles": [{}, {}]}), 45008, id="news-two"),
        pytest.param(msg("news", {}), 47001, id="news-missing"),
        pytest.param(msg("news", {"articles": ["x"]}), 47001, id="news-not-object"),
        pytest.param(msg("mpnewsarticle", {}), 47001, id="mpnewsarticle"),
        pytest.param(msg("msgmenu", {"list": []}), 47001, id="msgmenu-empty"),
        pytest.param(msg("msgmenu", {"list": [{"id": "1"}]}), 47001, id="msgmenu-content"),
        pytest.param(msg("msgmenu", {"list": [{"content": "x"}]}), 47001, id="msgmenu-id"),
        pytest.param(msg("wxcard", {}), 47001, id="wxcard"),
        pytest.param(
            msg("miniprogrampage", {"title": "t", "appid": "a", "thumb_media_id": "T"}),
            47001,
            id="miniprogram-pagepath",
        ),
        pytest.param(
            msg("miniprogrampage", {"title": "t", "appid": "a", "pagepath": "p"}),
            40007,
            id="miniprogram-thumb",
        ),
        pytest.param(text(customservice={"kf_account": "zz@gh"}), 65401, id="unknown-agent"),
        pytest.param(text(customservice={}), 65401, id="agent-missing"),
        pytest.param(text(customservice="a@gh"), 47001, id="customservice-not-object"),
        pytest.param(text(aimsgcontext={"is_ai_msg": 0}), 0, id="ai-0"),
        pytest.param(text(aimsgcontext={"is_ai_msg": 2}), 47001, id="ai-2"),
        pytest.param(text(aimsgcontext={"is_ai_msg": True}), 47001, id="ai-bool"),
        pytest.param(text(aimsgcontext={}), 47001, id="ai-missing"),
    ],
)
async def test_send_rules(
    api: RawAPI, wechat: FakeWeChat, body: dict[str, Any], expected: int
) -> None:
    wechat.add_agent("a@gh")
    wechat.user_says(USER)
    wechat.add_media("video", media_id="M", permanent=True)
    before = len(wechat.records)
    assert errcode(await api.post(SEND, body)) == expected
    assert wechat.sent_to(USER) == ([body] if expected == 0 else [])
    assert len(wechat.records) == before + (expected == 0)


async def test_a_user_who_never_wrote_is_out_of_the_window(api: RawAPI) -> None:
    assert errcode(await api.post(SEND, text())) == 45015


async def test_a_message_allows_five_sends(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.user_says(USER)
    for _ in range(5):
        assert await api.post(SEND, text()) == OK
    assert errcode(await api.post(SEND, text())) == 45047
    assert len(wechat.sent_to(USER)) == 5
    wechat.user_says(USER, "more please")
    assert await api.post(SEND, text()) == OK


@pytest.mark.parametrize(
    ("elapsed", "expected"), [(48 * HOUR - 1, 0), (48 * HOUR, 45015), (48 * HOUR + 1, 45015)]
)
async def test_the_window_lasts_48_hours(
    api: RawAPI, wechat: FakeWeChat, elapsed: int, expected: int
) -> None:
    wechat.user_says(USER)
    wechat.clock.advance(elapsed)
    assert errcode(await api.post(SEND, text())) == expected


async def test_a_new_message_reopens_the_window(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.user_says(USER)
    assert await api.post(SEND, text()) == OK
    wechat.clock.advance(47 * HOUR)
    wechat.user_says(USER)
    wechat.clock.advance(47 * HOUR)
    for _ in range(5):
        assert await api.post(SEND, text()) == OK
    assert errcode(await api.post(SEND, text())) == 45047


@pytest.mark.parametrize("event", ["user_follows", "user_clicks_menu"])
async def test_an_event_allows_three_sends_within_a_minute(
    api: RawAPI, wechat: FakeWeChat, event: str
) -> None:
    getattr(wechat, event)(USER)
    for _ in range(3):
        assert await api.post(SEND, text()) == OK
    assert errcode(await api.post(SEND, text())) == 45047
    wechat.clock.advance(60)
    assert errcode(await api.post(SEND, text())) == 45015


async def test_event_and_message_windows_add_up(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.user_says(USER)
    wechat.user_follows(USER)
    for _ in range(8):
        assert await api.post(SEND, text()) == OK
    assert errcode(await api.post(SEND, text())) == 45047


async def test_the_event_window_is_spent_first(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.user_says(USER)
    wechat.user_clicks_menu(USER)
    assert await api.post(SEND, text()) == OK
    assert wechat.users[USER].event_window is not None
    assert wechat.users[USER].event_window.sends_left == 2
    wechat.clock.advance(61)
    for _ in range(5):
        assert await api.post(SEND, text()) == OK
    assert errcode(await api.post(SEND, text())) == 45047


async def test_sends_are_kept_per_user(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.user_says(USER)
    wechat.user_says("o_user2")
    assert await api.post(SEND, text("one")) == OK
    assert await api.post(SEND, {**text("two"), "touser": "o_user2"}) == OK
    assert wechat.sent_to(USER) == [text("one")]
    assert wechat.sent_to("o_user2") == [{**text("two"), "touser": "o_user2"}]
    assert wechat.sent_to("o_nobody") == []


def typing(command: Any = "Typing") -> dict[str, Any]:
    return {"touser": USER, "command": command}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("Typing", 0),
        ("CancelTyping", 0),
        ("typing", 45072),
        ("", 45072),
        (None, 45072),
        (["Typing"], 45072),
    ],
)
async def test_typing_commands(
    api: RawAPI, wechat: FakeWeChat, command: Any, expected: int
) -> None:
    wechat.user_says(USER)
    assert errcode(await api.post(TYPING, typing(command))) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [({"command": "Typing"}, 40003), ({"touser": "", "command": "Typing"}, 40003)],
)
async def test_typing_needs_a_user(api: RawAPI, body: dict[str, Any], expected: int) -> None:
    assert errcode(await api.post(TYPING, body)) == expected


@pytest.mark.parametrize(
    ("elapsed", "expected"), [(0, 0), (30, 0), (31, 45080), (48 * HOUR, 45015)]
)
async def test_typing_needs_a_recent_exchange(
    api: RawAPI, wechat: FakeWeChat, elapsed: int, expected: int
) -> None:
    wechat.user_says(USER)
    wechat.clock.advance(elapsed)
    assert errcode(await api.post(TYPING, typing())) == expected


async def test_typing_needs_the_window(api: RawAPI, wechat: FakeWeChat) -> None:
    assert errcode(await api.post(TYPING, typing())) == 45015
    wechat.user_follows(USER)  # a window, but no message exchanged
    assert errcode(await api.post(TYPING, typing())) == 45080


async def test_a_send_counts_as_an_exchange(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.user_says(USER)
    wechat.clock.advance(HOUR)
    assert errcode(await api.post(TYPING, typing())) == 45080
    assert await api.post(SEND, text()) == OK
    wechat.clock.advance(30)
    assert await api.post(TYPING, typing()) == OK


@pytest.mark.parametrize(("elapsed", "expected"), [(0, 45081), (14, 45081), (15, 0)])
async def test_typing_lasts_15_seconds(
    api: RawAPI, wechat: FakeWeChat, elapsed: int, expected: int
) -> None:
    wechat.user_says(USER)
    assert await api.post(TYPING, typing()) == OK
    wechat.clock.advance(elapsed)
    assert errcode(await api.post(TYPING, typing())) == expected


@pytest.mark.parametrize("clear", ["CancelTyping", "send"])
async def test_cancel_or_send_ends_typing(api: RawAPI, wechat: FakeWeChat, clear: str) -> None:
    wechat.user_says(USER)
    assert await api.post(TYPING, typing()) == OK
    if clear == "send":
        assert await api.post(SEND, text()) == OK
    else:
        assert await api.post(TYPING, typing("CancelTyping")) == OK
    assert wechat.users[USER].typing_since is None
    assert await api.post(TYPING, typing()) == OK


async def test_cancel_typing_for_a_stranger_is_ok(api: RawAPI) -> None:
    assert await api.post(TYPING, typing("CancelTyping")) == OK
