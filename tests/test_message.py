"""``wx.message``: every message type's exact wire body, and WeChat's service-window rules."""

from __future__ import annotations

import pytest

from wechat_kf import (
    Article,
    AsyncWeChat,
    Image,
    InvalidRequestError,
    MenuItem,
    Message,
    MiniProgramPage,
    MpNews,
    MpNewsArticle,
    MsgMenu,
    Music,
    News,
    RawMessage,
    ResponseQuotaError,
    ResponseWindowError,
    Text,
    TypingError,
    ValidationError,
    Video,
    Voice,
    WxCard,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

SEND = "/cgi-bin/message/custom/send"
TYPING = "/cgi-bin/message/custom/typing"

WIRE: list[tuple[Message, str]] = [
    (
        Text(content='你好 <a href="https://x">x</a>'),
        '"text":{"content":"你好 <a href=\\"https://x\\">x</a>"}',
    ),
    (Image(media_id="MEDIA"), '"image":{"media_id":"MEDIA"}'),
    (Voice(media_id="MEDIA"), '"voice":{"media_id":"MEDIA"}'),
    (
        Video(media_id="M", thumb_media_id="T", title="标题", description="D"),
        '"video":{"media_id":"M","thumb_media_id":"T","title":"标题","description":"D"}',
    ),
    (Video(media_id="M", thumb_media_id="T"), '"video":{"media_id":"M","thumb_media_id":"T"}'),
    # WeChat's documented shape (and wechatpy's): no thumbnail.
    (
        Video(media_id="M", title="T", description="D"),
        '"video":{"media_id":"M","title":"T","description":"D"}',
    ),
    (
        Music(musicurl="U", hqmusicurl="H", thumb_media_id="T", title="歌"),
        '"music":{"musicurl":"U","hqmusicurl":"H","thumb_media_id":"T","title":"歌"}',
    ),
    (
        News(articles=[Article(title="Happy", description="Day", url="U", picurl="P")]),
        '"news":{"articles":[{"title":"Happy","description":"Day","url":"U","picurl":"P"}]}',
    ),
    (MpNews(media_id="MEDIA"), '"mpnews":{"media_id":"MEDIA"}'),
    (MpNewsArticle(article_id="ART"), '"mpnewsarticle":{"article_id":"ART"}'),
    (
        MsgMenu(
            head_content="满意吗?",
            items=[MenuItem(id="101", content="满意"), MenuItem(id="102", content="不满意")],
            tail_content="欢迎再次光临",
        ),
        '"msgmenu":{"list":[{"id":"101","content":"满意"},{"id":"102","content":"不满意"}],'
        '"head_content":"满意吗?","tail_content":"欢迎再次光临"}',
    ),
    (
        MsgMenu(items=[MenuItem(id="1", content="A")]),
        '"msgmenu":{"list":[{"id":"1","content":"A"}]}',
    ),
    (WxCard(card_id="CARD"), '"wxcard":{"card_id":"CARD"}'),
    (
        MiniProgramPage(title="T", appid="wxmini", pagepath="pages/index?x=1", thumb_media_id="TH"),
        '"miniprogrampage":{"title":"T","appid":"wxmini","pagepath":"pages/index?x=1",'
        '"thumb_media_id":"TH"}',
    ),
]


@pytest.mark.parametrize(("message", "payload"), WIRE, ids=[type(m).__name__ for m, _ in WIRE])
async def test_each_message_type_exact_wire_body(
    fake: FakeWeChat, wx: AsyncWeChat, message: Message, payload: str
) -> None:
    fake.user_says("user-1")
    for media_id in ("MEDIA", "M", "T", "TH"):  # materials the fake holds (else 40007)
        fake.add_media(media_id=media_id, permanent=True)
    await wx.message.send("user-1", message)
    (request,) = fake.requests_to(SEND)
    expected = f'{{"touser":"user-1","msgtype":"{message.msgtype}",{payload}}}'
    assert request.body == expected.encode()
    assert request.method == "POST"


async def test_send_as_agent_and_ai_marker(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent("test1@kftest")
    fake.user_says("user-1")
    await wx.message.send(
        "user-1", Text(content="hi"), kf_account="test1@kftest", ai_generated=True
    )
    (request,) = fake.requests_to(SEND)
    assert request.body == (
        b'{"touser":"user-1","msgtype":"text","text":{"content":"hi"},'
        b'"customservice":{"kf_account":"test1@kftest"},"aimsgcontext":{"is_ai_msg":1}}'
    )


async def test_raw_message_escape_hatch(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.user_says("user-1")
    message = RawMessage(type="text", payload={"content": "raw"})
    await wx.message.send("user-1", message)
    assert fake.sent_to("user-1")[0]["text"] == {"content": "raw"}


async def test_window_five_sends_then_45047(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.user_says("user-1")
    for n in range(5):
        await wx.message.send("user-1", Text(content=f"msg {n}"))
    with pytest.raises(ResponseQuotaError) as info:
        await wx.message.send("user-1", Text(content="one too many"))
    assert info.value.errcode == 45047
    assert len(fake.sent_to("user-1")) == 5
    assert len(fake.requests_to(SEND)) == 6  # never retried


async def test_outside_the_window_is_45015(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    with pytest.raises(ResponseWindowError) as info:
        await wx.message.send("never-wrote", Text(content="hi"))
    assert info.value.errcode == 45015
    fake.user_says("user-1")
    fake.clock.advance(48 * 3600 + 1)
    with pytest.raises(ResponseWindowError):
        await wx.message.send("user-1", Text(content="too late"))


async def test_fake_refuses_what_the_client_would_catch(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.user_says("user-1")
    # RawMessage bypasses client validation: the fake enforces the same rule (45008).
    articles = [{"title": "a"}, {"title": "b"}]
    with pytest.raises(InvalidRequestError) as info:
        await wx.message.send("user-1", RawMessage(type="news", payload={"articles": articles}))
    assert info.value.errcode == 45008


async def test_typing_on_the_wire_and_rules(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.user_says("user-1")
    await wx.message.typing("user-1")
    with pytest.raises(TypingError) as info:
        await wx.message.typing("user-1")
    assert info.value.errcode == 45081  # already typing
    await wx.message.cancel_typing("user-1")
    bodies = [r.body for r in fake.requests_to(TYPING)]
    assert bodies == [
        b'{"touser":"user-1","command":"Typing"}',
        b'{"touser":"user-1","command":"Typing"}',
        b'{"touser":"user-1","command":"CancelTyping"}',
    ]
    fake.clock.advance(31)
    with pytest.raises(TypingError) as info:
        await wx.message.typing("user-1")
    assert info.value.errcode == 45080  # no exchange in the last 30 s


async def test_send_validates_before_any_request(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    with pytest.raises(ValidationError, match="openid"):
        await wx.message.send("", Text(content="x"))
    with pytest.raises(ValidationError, match="kf_account"):
        await wx.message.send("user-1", Text(content="x"), kf_account="no-at-sign")
    with pytest.raises(TypeError, match="message"):
        await wx.message.send("user-1", {"msgtype": "text"})  # type: ignore[arg-type]
    assert list(fake.requests) == []
