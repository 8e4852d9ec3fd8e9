"""Passive replies: exact bytes, encryption when the push was encrypted, refusals."""

from __future__ import annotations

import pytest

from tests.callback.callback_fakes import APPID, KEY, TOKEN, FakeWeChat, event_push, text_push
from wechat_kf import (
    Article,
    Image,
    Music,
    News,
    Text,
    ValidationError,
    Video,
    Voice,
    WeChatError,
)
from wechat_kf.callback import (
    SUCCESS,
    CallbackHandler,
    ImageReply,
    MusicReply,
    NewsReply,
    Reply,
    Success,
    TextMessage,
    TextReply,
    TransferCustomerService,
    VideoReply,
    VoiceReply,
)
from wechat_kf.callback._xml import XMLValue, parse_fields

CLOCK = 1_700_000_123
HEAD = (
    b"<xml><ToUserName><![CDATA[oUser_openid_0000000000001]]></ToUserName>"
    b"<FromUserName><![CDATA[gh_account0001]]></FromUserName><CreateTime>1700000123</CreateTime>"
)


def plain_handler() -> CallbackHandler:
    return CallbackHandler(
        token=TOKEN, appid=APPID, timestamp_window=None, clock=lambda: CLOCK + 0.9
    )


def incoming(body: bytes = b"", *, handler: CallbackHandler | None = None) -> TextMessage:
    handler = handler or plain_handler()
    message = handler.parse(*FakeWeChat().push(body or text_push()))
    assert isinstance(message, TextMessage)
    return message


@pytest.mark.parametrize(
    ("reply", "tail"),
    [
        (
            TransferCustomerService(),
            b"<MsgType><![CDATA[transfer_customer_service]]></MsgType></xml>",
        ),
        (
            TransferCustomerService(kf_account="kf2001@gh_wechat-id"),
            b"<MsgType><![CDATA[transfer_customer_service]]></MsgType>"
            b"<TransInfo><KfAccount><![CDATA[kf2001@gh_wechat-id]]></KfAccount></TransInfo></xml>",
        ),
        (
            TextReply(content="你好 <b>&amp;</b> ]]> done"),
            b"<MsgType><![CDATA[text]]></MsgType>"
            b"<Content><![CDATA[\xe4\xbd\xa0\xe5\xa5\xbd <b>&amp;</b> ]]]]><![CDATA[> done]]>"
            b"</Content></xml>",
        ),
    ],
    ids=["transfer", "transfer-to-agent", "text"],
)
def test_plain_reply_exact_bytes(reply: Reply, tail: bytes) -> None:
    body = plain_handler().reply(incoming(), reply)
    assert body == HEAD + tail


def test_text_reply_content_survives_the_trip() -> None:
    content = "你好 <b>&amp;</b> ]]> done\n\tend"
    body = plain_handler().reply(incoming(), TextReply(content=content))
    assert parse_fields(body)["Content"] == content


@pytest.mark.parametrize("reply", [Success(), None])
def test_success_is_the_bare_word_even_in_safe_mode(reply: Reply | None) -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    message = handler.parse(*FakeWeChat(encoding_aes_key=KEY).push(text_push()))
    assert handler.reply(message, reply) == SUCCESS == b"success"


def test_encrypted_push_gets_an_encrypted_reply_with_the_same_plaintext() -> None:
    handler = CallbackHandler(
        token=TOKEN,
        appid=APPID,
        encoding_aes_key=KEY,
        timestamp_window=None,
        clock=lambda: CLOCK + 0.9,
    )
    fake = FakeWeChat(encoding_aes_key=KEY)
    message = handler.parse(*fake.push(text_push()))
    body = handler.reply(message, TransferCustomerService())
    assert b"transfer_customer_service" not in body
    envelope = parse_fields(body)
    assert list(envelope) == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
    assert envelope["TimeStamp"] == str(CLOCK)
    assert envelope["Nonce"].isdigit()
    assert len(envelope["Nonce"]) == 10
    assert fake.open_reply(body) == HEAD + (
        b"<MsgType><![CDATA[transfer_customer_service]]></MsgType></xml>"
    )
    # fresh random prefix and nonce each time
    assert handler.reply(message, TransferCustomerService()) != body


def test_transfer_answers_messages_not_events() -> None:
    handler = plain_handler()
    event = handler.parse(*FakeWeChat().push(event_push("kf_create_session", KfAccount="a@b")))
    with pytest.raises(ValidationError, match="user messages only") as info:
        handler.reply(event, TransferCustomerService())
    assert isinstance(info.value, WeChatError)
    # a text reply to an event is fine (a welcome message on subscribe)
    assert b"<Content><![CDATA[welcome]]></Content>" in handler.reply(
        event, TextReply(content="welcome")
    )


def test_an_encrypted_model_needs_a_key_to_answer() -> None:
    safe = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    message = safe.parse(*FakeWeChat(encoding_aes_key=KEY).push(text_push()))
    with pytest.raises(ValidationError, match="no encoding_aes_key"):
        plain_handler().reply(message, TextReply(content="x"))


@pytest.mark.parametrize(
    "account",
    [
        "",
        "noat",
        "@wechat",
        "prefix@",
        "elevenchars@wechat",
        "a-b@wechat",
        "kf@with space",
        "kf@a<b",
        "kf@" + "x" * 31,
        "a@b@c",
    ],
)
def test_kf_account_format_is_checked(account: str) -> None:
    with pytest.raises(ValidationError, match="prefix@wechat_id") as info:
        TransferCustomerService(kf_account=account)
    assert info.value.field == "kf_account"


@pytest.mark.parametrize("account", ["a@b", "kf_2001@gh_123", "K" * 10 + "@" + "w" * 30])
def test_valid_kf_accounts(account: str) -> None:
    assert TransferCustomerService(kf_account=account).kf_account == account


@pytest.mark.parametrize(("content", "match"), [("", "empty"), ("bell\x07", "control")])
def test_text_reply_content_is_checked(content: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        TextReply(content=content)


def test_a_custom_reply_subclass_is_rendered() -> None:
    class ImageReply(Reply):
        MSG_TYPE = "image"

        def xml_fields(self) -> dict[str, XMLValue]:
            return {**super().xml_fields(), "Image": {"MediaId": "media_1"}}

    body = plain_handler().reply(incoming(), ImageReply())
    assert body == HEAD + (
        b"<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[media_1]]></MediaId>"
        b"</Image></xml>"
    )


def test_a_hand_built_model_with_unwritable_text_is_a_validation_error() -> None:
    import attrs

    message = attrs.evolve(incoming(), from_user="bad\x00openid")
    with pytest.raises(ValidationError, match="cannot carry"):
        plain_handler().reply(message, TextReply(content="x"))


# --------------------------------------------------------------------------- media and news


def _cdata(value: str) -> bytes:
    return f"<![CDATA[{value}]]>".encode()


@pytest.mark.parametrize(
    ("reply", "tail", "message"),
    [
        (
            ImageReply(media_id="IMG"),
            b"<MsgType>"
            + _cdata("image")
            + b"</MsgType><Image><MediaId>"
            + _cdata("IMG")
            + b"</MediaId></Image></xml>",
            Image(media_id="IMG"),
        ),
        (
            VoiceReply(media_id="VOI"),
            b"<MsgType>"
            + _cdata("voice")
            + b"</MsgType><Voice><MediaId>"
            + _cdata("VOI")
            + b"</MediaId></Voice></xml>",
            Voice(media_id="VOI"),
        ),
        (
            VideoReply(media_id="VID", title="片", description="d"),
            b"<MsgType>"
            + _cdata("video")
            + b"</MsgType><Video><MediaId>"
            + _cdata("VID")
            + b"</MediaId><Title>"
            + _cdata("片")
            + b"</Title><Description>"
            + _cdata("d")
            + b"</Description></Video></xml>",
            Video(media_id="VID", title="片", description="d"),
        ),
        (
            VideoReply(media_id="VID"),
            b"<MsgType>"
            + _cdata("video")
            + b"</MsgType><Video><MediaId>"
            + _cdata("VID")
            + b"</MediaId></Video></xml>",
            Video(media_id="VID"),
        ),
        (
            MusicReply(
                musicurl="http://m/1.mp3",
                hqmusicurl="http://m/1hq.mp3",
                thumb_media_id="T",
                title="歌",
            ),
            b"<MsgType>"
            + _cdata("music")
            + b"</MsgType><Music><Title>"
            + _cdata("歌")
            + b"</Title><MusicUrl>"
            + _cdata("http://m/1.mp3")
            + b"</MusicUrl><HQMusicUrl>"
            + _cdata("http://m/1hq.mp3")
            + b"</HQMusicUrl><ThumbMediaId>"
            + _cdata("T")
            + b"</ThumbMediaId></Music></xml>",
            Music(
                musicurl="http://m/1.mp3",
                hqmusicurl="http://m/1hq.mp3",
                thumb_media_id="T",
                title="歌",
            ),
        ),
        (
            NewsReply(
                article=Article(
                    title="标题", description="描述", url="https://x/", picurl="https://x/p.jpg"
                )
            ),
            b"<MsgType>" + _cdata("news") + b"</MsgType><ArticleCount>1</ArticleCount><Articles>"
            b"<item><Title>"
            + _cdata("标题")
            + b"</Title><Description>"
            + _cdata("描述")
            + b"</Description><PicUrl>"
            + _cdata("https://x/p.jpg")
            + b"</PicUrl><Url>"
            + _cdata("https://x/")
            + b"</Url></item></Articles></xml>",
            News(
                articles=[
                    Article(
                        title="标题", description="描述", url="https://x/", picurl="https://x/p.jpg"
                    )
                ]
            ),
        ),
    ],
    ids=["image", "voice", "video", "video-bare", "music", "news"],
)
def test_media_and_news_replies_and_their_message_twins(
    reply: Reply, tail: bytes, message: object
) -> None:
    assert plain_handler().reply(incoming(), reply) == HEAD + tail
    assert reply.as_message() == message


def test_replies_that_have_no_message_twin() -> None:
    assert TransferCustomerService().as_message() is None
    assert Success().as_message() is None
    assert TextReply(content="hi").as_message() == Text(content="hi")


@pytest.mark.parametrize(
    "build",
    [
        lambda: ImageReply(media_id=""),
        lambda: VoiceReply(media_id=""),
        lambda: VideoReply(media_id="", title="t"),
        lambda: MusicReply(musicurl="", hqmusicurl="h", thumb_media_id="t"),
        lambda: NewsReply(article="not an article"),  # type: ignore[arg-type]
    ],
    ids=["image", "voice", "video", "music", "news"],
)
def test_media_replies_check_their_fields(build: object) -> None:
    with pytest.raises(ValidationError):
        build()  # type: ignore[operator]
