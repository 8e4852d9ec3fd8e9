"""The handler: configuration checks, secrets kept out of reprs and errors, request routing."""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.callback.callback_fakes import APPID, KEY, OLD_KEY, TOKEN, FakeWeChat, text_push
from wechat_kf import ValidationError, WeChatError
from wechat_kf.callback import (
    AppIdMismatchError,
    BodyTooLargeError,
    CallbackError,
    CallbackHandler,
    DecryptError,
    HostileXMLError,
    MalformedCallbackError,
    MissingDependencyError,
    PlaintextPushError,
    SignatureError,
    StaleTimestampError,
    TextMessage,
    XMLLimitError,
    XMLParseError,
)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"token": ""}, "token"),
        ({"token": "x" * 129}, "token"),
        ({"token": "has space"}, "token"),
        ({"token": "中文token"}, "token"),
        ({"appid": ""}, "appid"),
        ({"appid": "wx 123"}, "appid"),
        ({"appid": "wx中文"}, "appid"),
        ({"encoding_aes_key": "short"}, "encoding_aes_key"),
        (
            {"encoding_aes_key": KEY, "previous_encoding_aes_key": "short"},
            "previous_encoding_aes_key",
        ),
        ({"previous_encoding_aes_key": OLD_KEY}, "previous_encoding_aes_key"),
        ({"allow_plaintext": "yes"}, "allow_plaintext"),
        ({"allow_plaintext": 1}, "allow_plaintext"),
        ({"timestamp_window": 0}, "timestamp_window"),
        ({"timestamp_window": -5}, "timestamp_window"),
        ({"timestamp_window": float("nan")}, "timestamp_window"),
        ({"timestamp_window": float("inf")}, "timestamp_window"),
        ({"max_body_size": 0}, "max_body_size"),
        ({"max_body_size": True}, "max_body_size"),
        ({"max_body_size": 1.5}, "max_body_size"),
    ],
)
def test_contradictory_or_malformed_configuration_is_refused(
    kwargs: dict[str, object], field: str
) -> None:
    config: dict[str, object] = {"token": TOKEN, "appid": APPID, **kwargs}
    with pytest.raises(ValidationError) as info:
        CallbackHandler(**config)  # type: ignore[arg-type]
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_repr_shows_the_appid_only() -> None:
    handler = CallbackHandler(
        token=TOKEN, appid=APPID, encoding_aes_key=KEY, previous_encoding_aes_key=OLD_KEY
    )
    assert repr(handler) == f"CallbackHandler(appid={APPID!r})"
    assert str(handler) == repr(handler)
    assert handler.appid == APPID
    assert handler.safe_mode
    assert not CallbackHandler(token=TOKEN, appid=APPID).safe_mode
    with pytest.raises(TypeError):
        vars(handler)  # __slots__: no instance dict to dump


SECRET_TOKENS = st.from_regex(r"[A-Za-z0-9]{8,32}", fullmatch=True)
SECRET_KEYS = st.from_regex(r"[A-Za-z0-9]{43}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(token=SECRET_TOKENS, key=SECRET_KEYS, other=SECRET_KEYS, case=st.integers(0, 8))
def test_secrets_never_reach_an_exception(token: str, key: str, other: str, case: int) -> None:
    assume(other != key)  # the "wrong key" case needs another key
    handler = CallbackHandler(token=token, appid=APPID, encoding_aes_key=key, timestamp_window=5)
    good = FakeWeChat(token=token, encoding_aes_key=key)
    stale = FakeWeChat(token=token, encoding_aes_key=key, timestamp="1")
    wrong_key = FakeWeChat(token=token, encoding_aes_key=other)
    wrong_token = FakeWeChat(token=token[::-1] + "x", encoding_aes_key=key)
    cases: list[Callable[[], object]] = [
        lambda: handler.parse(*wrong_token.push(text_push())),
        lambda: handler.parse(*stale.push(text_push())),
        lambda: handler.parse(*wrong_key.push(text_push())),
        lambda: handler.parse(*good.push(b"<!DOCTYPE x><xml/>")),
        lambda: handler.parse(*good.push(b"<xml><A>1</A></xml>")),
        lambda: handler.verify_url(wrong_token.url_check()),
        lambda: handler.parse(
            *FakeWeChat(token=token, encoding_aes_key=key, appid="wxO").push(text_push())
        ),
        lambda: CallbackHandler(token=token, appid=APPID, encoding_aes_key=key[:-1]),
        lambda: handler.parse(*good.push(text_push(), encrypt=False)),
    ]
    with pytest.raises(WeChatError) as info:
        cases[case]()
    rendered = "".join(traceback.format_exception(info.value)) + repr(info.value)
    for secret in (token, key, key[:-1]):
        assert secret not in rendered


class TestRouting:
    plain = CallbackHandler(token=TOKEN, appid=APPID)
    safe = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    migrating = CallbackHandler(
        token=TOKEN, appid=APPID, encoding_aes_key=KEY, allow_plaintext=True
    )

    @pytest.mark.parametrize("encrypt_type", [None, "raw", ""])
    def test_plain_pushes(self, encrypt_type: str | None) -> None:
        query, body = FakeWeChat().push(text_push("plain"))
        if encrypt_type is not None:
            query["encrypt_type"] = encrypt_type
        for handler in (self.plain, self.migrating):
            message = handler.parse(query, body)
            assert isinstance(message, TextMessage)
            assert (message.content, message.encrypted) == ("plain", False)
        with pytest.raises(PlaintextPushError):
            self.safe.parse(query, body)

    def test_which_handlers_accept_plaintext(self) -> None:
        assert self.plain.accepts_plaintext
        assert not self.safe.accepts_plaintext
        assert self.migrating.accepts_plaintext
        assert CallbackHandler(token=TOKEN, appid=APPID, allow_plaintext=True).accepts_plaintext

    def test_unknown_encrypt_type(self) -> None:
        query, body = FakeWeChat().push(text_push())
        query["encrypt_type"] = "sm4"
        with pytest.raises(MalformedCallbackError, match="unknown encrypt_type 'sm4'"):
            self.safe.parse(query, body)

    def test_plain_push_with_a_bad_signature(self) -> None:
        query, body = FakeWeChat(token="otherToken").push(text_push())
        with pytest.raises(SignatureError):
            self.plain.parse(query, body)

    def test_encrypted_push_without_encrypt(self) -> None:
        query, _ = FakeWeChat(encoding_aes_key=KEY).push(text_push())
        for body in (
            b"<xml><ToUserName>gh</ToUserName></xml>",
            b"<xml><Encrypt></Encrypt></xml>",
            b"<xml><Encrypt><![CDATA[not base64!]]></Encrypt></xml>",
        ):
            with pytest.raises(MalformedCallbackError, match="no <Encrypt> element holding"):
                self.safe.parse(query, body)
        five = b"<xml>" + b"<Encrypt>QUJD</Encrypt>" * 5 + b"</xml>"
        with pytest.raises(MalformedCallbackError, match="more than 4 <Encrypt>"):
            self.safe.parse(query, five)

    def test_body_cap_applies_before_anything_else(self) -> None:
        handler = CallbackHandler(token=TOKEN, appid=APPID, max_body_size=64)
        with pytest.raises(BodyTooLargeError) as info:
            handler.parse({}, b"x" * 65)
        assert (info.value.size, info.value.limit) == (65, 64)
        assert handler.max_body_size == 64


def test_wrong_argument_types_are_type_errors() -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    query, body = FakeWeChat().push(text_push())
    with pytest.raises(TypeError, match="raw request bytes, not str"):
        handler.parse(query, body.decode())  # type: ignore[arg-type]
    listed = {name: [value] for name, value in query.items()}
    with pytest.raises(TypeError, match="Mapping"):
        handler.parse(listed, body)  # type: ignore[arg-type]
    assert isinstance(handler.parse(query, bytearray(body)), TextMessage)


def test_every_refusal_is_a_callback_error_and_a_wechat_error() -> None:
    for cls in (
        SignatureError,
        StaleTimestampError,
        AppIdMismatchError,
        DecryptError,
        BodyTooLargeError,
        XMLParseError,
        HostileXMLError,
        XMLLimitError,
        MalformedCallbackError,
        MissingDependencyError,
        PlaintextPushError,
    ):
        assert issubclass(cls, CallbackError)
        assert issubclass(cls, WeChatError)
    assert issubclass(HostileXMLError, XMLParseError)
    assert issubclass(XMLLimitError, XMLParseError)
    assert issubclass(MissingDependencyError, ImportError)
    assert issubclass(PlaintextPushError, SignatureError)  # refused like a bad signature: 403


@pytest.mark.parametrize(
    "error",
    [
        SignatureError("bad"),
        PlaintextPushError("plain"),
        StaleTimestampError(5, 1000.0, 300.0),
        StaleTimestampError(None, 1000.0, 300.0),
        AppIdMismatchError("wxA", "wxB"),
        DecryptError("bad"),
        BodyTooLargeError(10, 5),
        HostileXMLError("doctype"),
        XMLLimitError("elements", 1024),
        XMLLimitError("depth", 16),
        MalformedCallbackError("x"),
        MissingDependencyError("cryptography", "safe mode"),
    ],
)
def test_errors_pickle(error: CallbackError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


# --------------------------------------------------------------------------- exact refusals


@pytest.mark.parametrize(
    ("kwargs", "field", "limit", "value"),
    [
        (
            {"token": "has space"},
            "token",
            "must be the token set in WeChat (printable ASCII)",
            None,
        ),
        ({"appid": "wx 1"}, "appid", "must be the AppID (printable ASCII, no spaces)", "wx 1"),
        (
            {"previous_encoding_aes_key": OLD_KEY},
            "previous_encoding_aes_key",
            "needs encoding_aes_key (the current key) as well",
            None,
        ),
        ({"allow_plaintext": 1}, "allow_plaintext", "must be a bool", 1),
        ({"timestamp_window": 0}, "timestamp_window", "must be a positive number of seconds", None),
        ({"max_body_size": 1.5}, "max_body_size", "must be an int (bytes)", 1.5),
        ({"max_body_size": -1}, "max_body_size", "must be positive", -1),
    ],
)
def test_configuration_errors_state_the_rule(
    kwargs: dict[str, object], field: str, limit: str, value: object
) -> None:
    with pytest.raises(ValidationError) as info:
        CallbackHandler(**{"token": TOKEN, "appid": APPID, **kwargs})  # type: ignore[arg-type]
    assert (info.value.field, info.value.limit, info.value.value) == (field, limit, value)


def test_a_short_window_and_a_large_body_cap_are_accepted() -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID, timestamp_window=0.5, max_body_size=1)
    assert handler.max_body_size == 1


def _padded_push(size: int) -> bytes:
    body = text_push("")
    return text_push("x" * (size - len(body)))


def test_the_body_cap_is_inclusive() -> None:
    body = _padded_push(600)
    assert len(body) == 600
    handler = CallbackHandler(token=TOKEN, appid=APPID, max_body_size=600)
    assert isinstance(handler.parse(FakeWeChat().push(body)[0], body), TextMessage)
    longer = _padded_push(601)
    with pytest.raises(BodyTooLargeError) as info:
        handler.parse(FakeWeChat().push(longer)[0], longer)
    assert (info.value.size, info.value.limit) == (601, 600)


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aes"])
def test_a_cap_above_the_default_applies_to_the_parsed_xml_too(key: str | None) -> None:
    from wechat_kf.callback._defaults import MAX_BODY_SIZE

    content = "x" * (MAX_BODY_SIZE + 1000)
    handler = CallbackHandler(
        token=TOKEN, appid=APPID, encoding_aes_key=key, max_body_size=4 * MAX_BODY_SIZE
    )
    message = handler.parse(*FakeWeChat(encoding_aes_key=key).push(text_push(content)))
    assert isinstance(message, TextMessage)
    assert message.content == content


def test_the_timestamp_window_is_inclusive() -> None:
    now = 1_700_000_000.0
    handler = CallbackHandler(token=TOKEN, appid=APPID, clock=lambda: now)
    for offset in (-300, 300):
        push = FakeWeChat(timestamp=str(int(now) + offset)).push(text_push())
        assert isinstance(handler.parse(*push), TextMessage)
    with pytest.raises(StaleTimestampError) as info:
        handler.parse(*FakeWeChat(timestamp=str(int(now) - 301)).push(text_push()))
    assert (info.value.timestamp, info.value.now, info.value.window) == (int(now) - 301, now, 300)
    with pytest.raises(StaleTimestampError) as info:
        handler.parse(*FakeWeChat(timestamp="17e8").push(text_push()))
    assert (info.value.timestamp, info.value.now, info.value.window) == (None, now, 300)
    assert str(info.value) == "timestamp is not an integer"


def test_a_compatibility_push_without_encrypt_reads_its_plaintext() -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    query, body = FakeWeChat().push(text_push("plain fields only"))
    message = handler.parse({**query, "encrypt_type": "aes"}, body)
    assert isinstance(message, TextMessage)
    assert message.content == "plain fields only"


def test_refusal_texts() -> None:
    plain = CallbackHandler(token=TOKEN, appid=APPID)
    safe = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    query, body = FakeWeChat().push(text_push())
    check = FakeWeChat().url_check()
    del check["echostr"]
    with pytest.raises(MalformedCallbackError) as info:
        plain.verify_url(check)
    assert str(info.value) == "the URL check has no echostr query parameter"
    with pytest.raises(MalformedCallbackError) as info:
        plain.parse({**query, "encrypt_type": "x" * 30}, body)
    assert str(info.value) == f"unknown encrypt_type {'x' * 20!r}"
    with pytest.raises(PlaintextPushError) as info:
        safe.parse(query, body)
    assert str(info.value) == (
        "a plaintext push (no encrypt_type=aes) reached a handler in safe mode: refused, since "
        "its signature does not cover the body. If the WeChat admin console is still in plain "
        "mode, switch it to safe mode (or pass allow_plaintext=True while migrating)"
    )
    with pytest.raises(SignatureError) as info:
        plain.parse({**query, "signature": "0" * 40}, body)
    assert str(info.value) == (
        "signature does not match: the request is not from WeChat, or the token differs from "
        "the one set in the WeChat admin console"
    )
    encrypted_query, envelope = FakeWeChat(encoding_aes_key=KEY).push(text_push())
    with pytest.raises(SignatureError) as info:
        safe.parse({**encrypted_query, "msg_signature": "0" * 40}, envelope)
    assert str(info.value) == (
        "msg_signature does not match: the push is not from WeChat, or the token differs from "
        "the one set in the WeChat admin console"
    )
    with pytest.raises(TypeError) as type_error:
        plain.parse({**query, "nonce": ["1"]}, body)  # type: ignore[dict-item]
    assert str(type_error.value) == (
        "query['nonce'] is a list: pass the query string as a Mapping[str, str] (one value per "
        "name)"
    )


def test_reply_refusals_name_their_field() -> None:
    from wechat_kf.callback import Reply, TextReply, TransferCustomerService
    from wechat_kf.callback._xml import XMLValue

    plain = CallbackHandler(token=TOKEN, appid=APPID)
    event = plain.parse(*FakeWeChat().push(_event()))
    with pytest.raises(ValidationError) as info:
        plain.reply(event, TransferCustomerService())
    assert (info.value.field, info.value.limit) == (
        "reply",
        "transfer_customer_service answers user messages only, not events",
    )
    message = plain.parse(*FakeWeChat().push(text_push()))

    class Odd(Reply):  # a reply of the user's own that XML cannot carry
        MSG_TYPE = "text"

        def xml_fields(self) -> dict[str, XMLValue]:
            return {**super().xml_fields(), "bad tag": "x"}

    with pytest.raises(ValidationError) as info:
        plain.reply(message, Odd())
    assert (info.value.field, info.value.limit) == ("reply", "not an XML tag name: 'bad tag'")
    encrypted = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY).parse(
        *FakeWeChat(encoding_aes_key=KEY).push(text_push())
    )
    with pytest.raises(ValidationError) as info:
        plain.reply(encrypted, TextReply(content="hi"))
    assert (info.value.field, info.value.limit) == (
        "incoming",
        "was encrypted, but this handler has no encoding_aes_key",
    )


def _event() -> bytes:
    from tests.callback.callback_fakes import event_push

    return event_push("kf_create_session", KfAccount="kf1@wx")
