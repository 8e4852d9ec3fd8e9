"""Every documented push, parsed to its typed model and round-tripped (plain and encrypted)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import attrs
import pytest

from tests.callback.callback_fakes import (
    ACCOUNT,
    APPID,
    KEY,
    NOW,
    OPENID,
    TOKEN,
    FakeWeChat,
    push_xml,
)
from wechat_kf.callback import (
    CallbackHandler,
    Event,
    ImageMessage,
    Incoming,
    KfCloseSession,
    KfCreateSession,
    KfSwitchSession,
    LinkMessage,
    LocationMessage,
    MalformedCallbackError,
    ShortVideoMessage,
    TextMessage,
    UnknownMessage,
    UserMessage,
    VideoMessage,
    VoiceMessage,
)

WHEN = datetime.fromtimestamp(NOW, tz=timezone.utc)
ENVELOPE: dict[str, str | int] = {"ToUserName": ACCOUNT, "FromUserName": OPENID, "CreateTime": NOW}
COMMON: dict[str, Any] = {"to_user": ACCOUNT, "from_user": OPENID, "create_time": WHEN}

# (the fields WeChat documents for the push, the model expected from them)
SAMPLES: dict[str, tuple[dict[str, str | int], Incoming]] = {}


def sample(name: str, fields: dict[str, str | int], model: type[Incoming], **expected: Any) -> None:
    raw = {**ENVELOPE, **fields}
    SAMPLES[name] = (raw, model(**COMMON, raw={k: str(v) for k, v in raw.items()}, **expected))


sample(
    "text",
    {"MsgType": "text", "Content": " this is a test\n", "MsgId": 1234567890123456},
    TextMessage,
    msg_type="text",
    content=" this is a test\n",
    msg_id=1234567890123456,
)
# Real captures omit fields the docs list: a text push without <MsgId>, an old image push
# without <MediaId>. Both parse; the missing field is None.
sample(
    "text-without-msgid",
    {"MsgType": "text", "Content": "no id"},
    TextMessage,
    msg_type="text",
    content="no id",
    msg_id=None,
)
sample(
    "old-image-without-mediaid",
    {"MsgType": "image", "PicUrl": "http://mmbiz.qpic.cn/x", "MsgId": 5},
    ImageMessage,
    msg_type="image",
    pic_url="http://mmbiz.qpic.cn/x",
    media_id=None,
    msg_id=5,
)
sample(
    "text-with-empty-msgid",
    {"MsgType": "text", "Content": "x", "MsgId": " ", "bizmsgmenuid": ""},
    TextMessage,
    msg_type="text",
    content="x",
    msg_id=None,
    bizmsgmenuid=None,
)
sample(
    "text-from-article",
    {
        "MsgType": "text",
        "Content": "hi",
        "MsgId": 1,
        "MsgDataId": "2247483652",
        "Idx": "1",
    },
    TextMessage,
    msg_type="text",
    content="hi",
    msg_id=1,
)
sample(
    "msgmenu-click",
    {"MsgType": "text", "Content": "满意", "MsgId": 22, "bizmsgmenuid": "101"},
    TextMessage,
    msg_type="text",
    content="满意",
    msg_id=22,
    bizmsgmenuid="101",
)
sample(
    "image",
    {"MsgType": "image", "PicUrl": "http://mmbiz.qpic.cn/x", "MediaId": "media_1", "MsgId": 3},
    ImageMessage,
    msg_type="image",
    pic_url="http://mmbiz.qpic.cn/x",
    media_id="media_1",
    msg_id=3,
)
sample(
    "voice",
    {"MsgType": "voice", "MediaId": "m", "Format": "amr", "MsgId": 4, "MediaId16K": "m16"},
    VoiceMessage,
    msg_type="voice",
    media_id="m",
    format="amr",
    msg_id=4,
    media_id_16k="m16",
)
sample(
    "voice-recognised",
    {"MsgType": "voice", "MediaId": "m", "Format": "speex", "Recognition": "腾讯", "MsgId": 5},
    VoiceMessage,
    msg_type="voice",
    media_id="m",
    format="speex",
    recognition="腾讯",
    msg_id=5,
)
sample(
    "video",
    {"MsgType": "video", "MediaId": "m", "ThumbMediaId": "t", "MsgId": 6},
    VideoMessage,
    msg_type="video",
    media_id="m",
    thumb_media_id="t",
    msg_id=6,
)
sample(
    "shortvideo",
    {"MsgType": "shortvideo", "MediaId": "m", "ThumbMediaId": "t", "MsgId": 7},
    ShortVideoMessage,
    msg_type="shortvideo",
    media_id="m",
    thumb_media_id="t",
    msg_id=7,
)
sample(
    "location",
    {
        "MsgType": "location",
        "Location_X": "23.134521",
        "Location_Y": "-113.358803",
        "Scale": 20,
        "Label": "位置信息",
        "MsgId": 8,
    },
    LocationMessage,
    msg_type="location",
    latitude=23.134521,
    longitude=-113.358803,
    scale=20,
    label="位置信息",
    msg_id=8,
)
sample(
    "link",
    {
        "MsgType": "link",
        "Title": "公众平台官网链接",
        "Description": "公众平台官网链接",
        "Url": "https://mp.weixin.qq.com",
        "MsgId": 9,
    },
    LinkMessage,
    msg_type="link",
    title="公众平台官网链接",
    description="公众平台官网链接",
    url="https://mp.weixin.qq.com",
    msg_id=9,
)
sample(
    "kf_create_session",
    {"MsgType": "event", "Event": "kf_create_session", "KfAccount": "test1@test"},
    KfCreateSession,
    msg_type="event",
    event="kf_create_session",
    kf_account="test1@test",
)
sample(
    "kf_close_session",
    {"MsgType": "event", "Event": "kf_close_session", "KfAccount": "test1@test"},
    KfCloseSession,
    msg_type="event",
    event="kf_close_session",
    kf_account="test1@test",
)
sample(
    "kf_switch_session",
    {
        "MsgType": "event",
        "Event": "kf_switch_session",
        "FromKfAccount": "test1@test",
        "ToKfAccount": "test2@test",
    },
    KfSwitchSession,
    msg_type="event",
    event="kf_switch_session",
    from_kf_account="test1@test",
    to_kf_account="test2@test",
)
sample(
    "subscribe",
    {"MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_123", "Ticket": "TICKET"},
    Event,
    msg_type="event",
    event="subscribe",
)
sample(
    "unknown-event",
    {"MsgType": "event", "Event": "some_future_event", "Whatever": "kept"},
    Event,
    msg_type="event",
    event="some_future_event",
)
sample(
    "unknown-message",
    {"MsgType": "miniprogrampage", "Title": "t", "AppId": "wxapp", "MsgId": 10},
    UnknownMessage,
    msg_type="miniprogrampage",
)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_push_parses_to_its_model(name: str) -> None:
    fields, expected = SAMPLES[name]
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    model = handler.parse(*FakeWeChat().push(push_xml(fields)))
    assert type(model) is type(expected)
    assert model == expected
    assert model.raw == expected.raw


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_push_round_trips_plain_and_encrypted(name: str) -> None:
    fields, _ = SAMPLES[name]
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY, allow_plaintext=True)
    plain = handler.parse(*FakeWeChat().push(push_xml(fields)))
    encrypted = handler.parse(*FakeWeChat(encoding_aes_key=KEY).push(push_xml(fields)))
    assert encrypted == attrs.evolve(plain, encrypted=True)
    # model -> raw fields -> XML -> model again
    again = handler.parse(*FakeWeChat().push(push_xml(dict(plain.raw))))
    assert again == plain


def test_nested_event_fields_are_kept() -> None:
    body = (
        b"<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[o]]></FromUserName>"
        b"<CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA["
        b"scancode_waitmsg]]></Event><EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType>"
        b"<![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo></xml>"
    )
    model = CallbackHandler(token=TOKEN, appid=APPID).parse(FakeWeChat().push(b"")[0], body)
    assert type(model) is Event
    assert model.event == "scancode_waitmsg"
    assert model.raw["ScanCodeInfo/ScanType"] == "qrcode"
    assert model.raw["EventKey"] == "6"


def test_identifiers_are_stripped_but_text_is_not() -> None:
    fields = {**ENVELOPE, "MsgType": "  text ", "Content": "  x  ", "MsgId": " 12 "}
    model = CallbackHandler(token=TOKEN, appid=APPID).parse(*FakeWeChat().push(push_xml(fields)))
    assert isinstance(model, TextMessage)
    assert (model.msg_type, model.content, model.msg_id) == ("text", "  x  ", 12)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"MsgType": "text", "MsgId": 1}, "TextMessage push has no <Content>"),
        ({"MsgType": "text", "Content": "x", "MsgId": "abc"}, "<MsgId> not an integer: 'abc'"),
        ({"MsgType": "text", "Content": "x", "MsgId": "١٢"}, "<MsgId> not an integer"),
        ({"MsgType": "image", "MsgId": 1, "MediaId": "m"}, "no <PicUrl>"),
        ({"MsgType": "event"}, "Event push has no <Event>"),
        ({"MsgType": "event", "Event": "kf_create_session"}, "no <KfAccount>"),
        ({"MsgType": "event", "Event": "kf_switch_session", "FromKfAccount": "a@b"}, "ToKfAccount"),
        ({"Content": "x"}, "no <MsgType>"),
        (
            {"MsgType": "location", "MsgId": 1, "Location_X": "nan", "Location_Y": "1", "Scale": 1},
            "<Location_X> not a decimal number",
        ),
        (
            {"MsgType": "location", "MsgId": 1, "Location_X": "1e5", "Location_Y": "1", "Scale": 1},
            "<Location_X> not a decimal number",
        ),
    ],
)
def test_a_known_type_missing_a_documented_field_is_malformed(
    fields: dict[str, str | int], match: str
) -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    with pytest.raises(MalformedCallbackError, match=match):
        handler.parse(*FakeWeChat().push(push_xml({**ENVELOPE, **fields})))


@pytest.mark.parametrize(
    ("envelope", "match"),
    [
        ({"FromUserName": OPENID, "CreateTime": NOW}, "no <ToUserName>"),
        ({"ToUserName": ACCOUNT, "CreateTime": NOW}, "no <FromUserName>"),
        ({"ToUserName": ACCOUNT, "FromUserName": OPENID}, "no <CreateTime>"),
        ({**ENVELOPE, "CreateTime": "99999999999999999999"}, "<CreateTime> not a Unix time"),
        ({**ENVELOPE, "CreateTime": "soon"}, "<CreateTime> not an integer"),
    ],
)
def test_the_envelope_is_required(envelope: dict[str, str | int], match: str) -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    body = push_xml({**envelope, "MsgType": "anything"})
    with pytest.raises(MalformedCallbackError, match=match):
        handler.parse(*FakeWeChat().push(body))


def test_a_repeated_element_is_never_silently_picked() -> None:
    body = (
        b"<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>"
        b"<MsgType>text</MsgType><MsgType>event</MsgType><Content>x</Content><MsgId>1</MsgId></xml>"
    )
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    with pytest.raises(MalformedCallbackError, match="appears more than once"):
        handler.parse(FakeWeChat().push(b"")[0], body)


def test_models_are_frozen_hashable_and_their_raw_is_read_only() -> None:
    _, model = SAMPLES["msgmenu-click"]
    assert isinstance(model, TextMessage)
    assert isinstance(model, UserMessage)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        model.content = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        model.raw["Content"] = "changed"  # type: ignore[index]
    assert hash(model) == hash(attrs.evolve(model))
    assert model.create_time.tzinfo is timezone.utc
    assert "raw=" not in repr(model)
    assert "bizmsgmenuid='101'" in repr(model)


def test_shortvideo_is_a_video_and_session_events_are_events() -> None:
    assert issubclass(ShortVideoMessage, VideoMessage)
    for cls in (KfCreateSession, KfCloseSession, KfSwitchSession):
        assert issubclass(cls, Event)
        assert not issubclass(cls, UserMessage)
