"""Safe mode: WeChat's official vectors, both directions, tampering, key rotation, the extra."""

from __future__ import annotations

import base64
import os
import struct
import subprocess
import sys
import textwrap

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from tests.callback.callback_fakes import (
    APPID,
    KEY,
    NOW,
    OFFICIAL_ENCRYPT_APPID,
    OFFICIAL_ENCRYPT_CASES,
    OFFICIAL_ENCRYPT_RANDOM,
    OFFICIAL_PLAINTEXT,
    OFFICIAL_PUSH,
    OFFICIAL_PUSH_2,
    OLD_KEY,
    SAMPLE_KEY,
    TOKEN,
    FakeWeChat,
    aes_key,
    push_xml,
    text_push,
    wechat_decrypt,
    wechat_encrypt,
)
from wechat_kf import ValidationError
from wechat_kf.callback import (
    AppIdMismatchError,
    CallbackHandler,
    DecryptError,
    PlaintextPushError,
    SignatureError,
    StaleTimestampError,
    TextMessage,
    TextReply,
    TransferCustomerService,
)
from wechat_kf.callback._crypto import AESKey, decrypt, encrypt

# --------------------------------------------------------------------------- known answers


@pytest.mark.parametrize(("message", "expected"), OFFICIAL_ENCRYPT_CASES, ids=["short", "xml"])
def test_encrypt_reproduces_the_official_vectors(message: bytes, expected: str) -> None:
    result = encrypt(
        AESKey(SAMPLE_KEY),
        message,
        appid=OFFICIAL_ENCRYPT_APPID,
        random_prefix=OFFICIAL_ENCRYPT_RANDOM,
    )
    assert result == expected


@pytest.mark.parametrize(("message", "ciphertext"), OFFICIAL_ENCRYPT_CASES, ids=["short", "xml"])
def test_decrypt_reads_the_official_vectors(message: bytes, ciphertext: str) -> None:
    appid = OFFICIAL_ENCRYPT_APPID
    assert decrypt(AESKey(SAMPLE_KEY), ciphertext, appid=appid) == message


def test_the_official_python_sample_push_parses() -> None:
    sample = OFFICIAL_PUSH
    handler = CallbackHandler(
        token=sample["token"],
        appid=sample["appid"],
        encoding_aes_key=SAMPLE_KEY,
        timestamp_window=None,  # a recorded push of 2014
    )
    # The sample is "compatible mode": plaintext fields next to <Encrypt>.
    body = (
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA["
        "oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>"
        f"6054768590064713728</MsgId><Encrypt><![CDATA[{sample['encrypt']}]]></Encrypt></xml>"
    ).encode()
    query = {
        "timestamp": sample["timestamp"],
        "nonce": sample["nonce"],
        "msg_signature": sample["msg_signature"],
        "encrypt_type": "aes",
    }
    plain = decrypt(AESKey(SAMPLE_KEY), sample["encrypt"], appid=sample["appid"])
    assert plain == OFFICIAL_PLAINTEXT
    message = handler.parse(query, body)
    assert isinstance(message, TextMessage)
    assert (message.to_user, message.from_user) == (
        "gh_10f6c3c3ac5a",
        "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
    )
    assert (message.content, message.msg_id) == ("abcdteT", 6054768590064713728)
    assert message.create_time.timestamp() == 1409735668
    assert message.encrypted
    assert not message.decrypted_with_previous_key


def test_the_official_csharp_sample_decrypts_with_a_30_byte_pad() -> None:
    sample = OFFICIAL_PUSH_2
    plain = decrypt(AESKey(sample["key"]), sample["encrypt"], appid=sample["appid"])
    assert plain.startswith(b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>")
    assert b"<Content><![CDATA[hello]]></Content>" in plain
    _, message, appid = wechat_decrypt(sample["key"], sample["encrypt"])
    assert (message, appid) == (plain, b"wx5823bf96d3bd56c7")


# --------------------------------------------------------------------------- both ways


@given(message=st.binary(max_size=300), random=st.binary(min_size=16, max_size=16))
def test_ours_and_the_reference_agree_both_ways(message: bytes, random: bytes) -> None:
    ours = encrypt(AESKey(KEY), message, appid=APPID, random_prefix=random)
    reference = wechat_encrypt(KEY, APPID, message, random)
    assert ours == reference
    assert decrypt(AESKey(KEY), reference, appid=APPID) == message
    assert wechat_decrypt(KEY, ours) == (random, message, APPID.encode())


@pytest.mark.parametrize("size", range(70))
def test_padding_is_pkcs7_to_32(size: int) -> None:
    message = b"m" * size
    data = base64.b64decode(encrypt(AESKey(KEY), message, appid=APPID, random_prefix=bytes(16)))
    unpadded = 16 + 4 + size + len(APPID)
    assert len(data) % 32 == 0
    assert len(data) == unpadded + (32 - unpadded % 32)  # a full block of 32 when aligned
    assert decrypt(AESKey(KEY), base64.b64encode(data).decode(), appid=APPID) == message


# --------------------------------------------------------------------------- refusals


def _ciphertext(message: bytes = b"<xml/>", appid: str = APPID, key: str = KEY) -> str:
    return wechat_encrypt(key, appid, message, b"r" * 16)


@pytest.mark.parametrize(
    ("ciphertext", "match"),
    [
        ("not base64!", "not valid base64"),
        ("é", "not valid base64"),
        ("", "0 bytes"),
        (base64.b64encode(b"x" * 15).decode(), "15 bytes, not whole AES blocks"),
        (base64.b64encode(b"x" * 33).decode(), "33 bytes"),
    ],
)
def test_undecodable_text_is_a_decrypt_error(ciphertext: str, match: str) -> None:
    with pytest.raises(DecryptError, match=match):
        decrypt(AESKey(KEY), ciphertext, appid=APPID)


def test_wrong_key_is_a_typed_error() -> None:
    with pytest.raises((DecryptError, AppIdMismatchError)):
        decrypt(AESKey(OLD_KEY), _ciphertext(), appid=APPID)


def test_other_appid_is_refused_with_both_names() -> None:
    with pytest.raises(AppIdMismatchError) as info:
        decrypt(AESKey(KEY), _ciphertext(appid="wxOTHERACCOUNT000"), appid=APPID)
    assert (info.value.expected, info.value.actual) == (APPID, "wxOTHERACCOUNT000")
    assert "wxOTHERACCOUNT000" in str(info.value)


def test_a_length_prefix_beyond_the_data_is_refused() -> None:
    key = base64.b64decode(KEY + "=")
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    plain = bytes(16) + (10_000).to_bytes(4, "big") + b"short" + APPID.encode()
    plain += bytes([32 - len(plain) % 32]) * (32 - len(plain) % 32)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    ciphertext = base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
    with pytest.raises(DecryptError, match="length prefix exceeds"):
        decrypt(AESKey(KEY), ciphertext, appid=APPID)


def _reference_decrypt(ciphertext: str) -> bytes | tuple[type[Exception], str]:
    """WeChat's rules applied to a plain CBC decryption: the message, or (error, reason)."""
    key = aes_key(KEY)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(ciphertext)) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad:
        return DecryptError, "bad padding"
    content = plain[16:-pad]
    if len(content) < 4:
        return DecryptError, "too short"
    (length,) = struct.unpack(">I", content[:4])
    if length > len(content) - 4:
        return DecryptError, "length prefix exceeds"
    message, appid = content[4 : 4 + length], content[4 + length :]
    if appid != APPID.encode():
        return AppIdMismatchError, appid.decode("latin-1")
    return message


@given(
    st.sampled_from([b"<xml><A>1</A></xml>", b"", b"x" * 40, "中文".encode() * 9]),
    st.lists(st.tuples(st.integers(0, 255), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_any_ciphertext_gives_its_message_or_the_typed_error(
    message: bytes, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(base64.b64decode(_ciphertext(message)))
    for where, bits in flips:
        data[where % len(data)] ^= bits
    ciphertext = base64.b64encode(bytes(data)).decode()
    expected = _reference_decrypt(ciphertext)
    try:
        got: object = decrypt(AESKey(KEY), ciphertext, appid=APPID)
    except (DecryptError, AppIdMismatchError) as exc:  # anything else fails the test
        got = exc
    if isinstance(expected, bytes):
        assert got == expected
        return
    error, detail = expected
    assert type(got) is error, f"{got!r}: expected {error.__name__} ({detail})"
    if isinstance(got, AppIdMismatchError):
        assert got.expected == APPID
        printable = detail.isprintable() and detail.isascii() and len(detail) <= 64
        assert got.actual == (detail if printable else f"<{len(detail)} undecodable bytes>")
    else:
        assert detail in str(got)


def _encrypt_plain(plain: bytes) -> str:
    """Encrypt an exact plaintext (whole AES blocks), for padding and length edge cases."""
    key = aes_key(KEY)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def _framed(content: bytes, pad: int) -> bytes:
    """16 random bytes + ``content`` + ``pad`` bytes of value ``pad``."""
    return b"r" * 16 + content + bytes([pad]) * pad


def _decrypted(plain: bytes) -> bytes | Exception:
    try:
        return decrypt(AESKey(KEY), _encrypt_plain(plain), appid=APPID)
    except (DecryptError, AppIdMismatchError) as exc:
        return exc


PADDING = "bad padding: wrong EncodingAESKey, or a corrupted message"
SHORT = "decrypted data too short: wrong EncodingAESKey?"
PREFIX = "message length prefix exceeds the data: wrong EncodingAESKey?"


@pytest.mark.parametrize(
    ("plain", "message"),
    [
        (b"\x10" * 16, SHORT),  # one block, all padding: pad 16 = the whole block
        (b"r" * 15 + b"\x11", PADDING),  # pad 17 > one block
        (b"r" * 31 + b"\x00", PADDING),  # pad 0
        (b"r" * 31 + b"\x21", PADDING),  # pad 33: beyond WeChat's 32
        (b"r" * 24 + b"\x28" * 40, PADDING),  # pad 40, all 40 bytes equal: still beyond 32
        (b"r" * 29 + b"\x03\x02\x03", PADDING),  # pad 3 whose bytes differ
        (_framed(b"\x00\x00\x00", 13), SHORT),  # 3 bytes: no room for the length prefix
        (_framed(b"\x00\x00\x00\x05" + b"abcd", 8), PREFIX),  # 5 announced, 4 there
        (_framed(b"\xff\xff\xff\xff", 12), PREFIX),
    ],
)
def test_each_refusal_says_what_is_wrong(plain: bytes, message: str) -> None:
    error = _decrypted(plain)
    assert isinstance(error, DecryptError)
    assert str(error) == message


def test_a_length_prefix_with_nothing_after_it_reads_an_empty_appid() -> None:
    # Length 0 and no appid, or a message reaching the very end: not a length error, the
    # appid (empty) is wrong.
    for content in (b"\x00\x00\x00\x00", b"\x00\x00\x00\x04abcd"):
        error = _decrypted(_framed(content, 32 - (16 + len(content)) % 32))
        assert isinstance(error, AppIdMismatchError)
        assert (error.expected, error.actual) == (APPID, "")
    content = b"\x00\x00\x00\x02hi" + APPID.encode()
    assert _decrypted(_framed(content, 32 - (16 + len(content)) % 32)) == b"hi"


@pytest.mark.parametrize(
    ("appid", "shown"),
    [
        (b"wxOTHER", "wxOTHER"),
        (b"x" * 64, "x" * 64),
        (b"x" * 65, "<65 undecodable bytes>"),
        ("wx中文".encode(), "<8 undecodable bytes>"),  # valid UTF-8, but not an appid
        (b"wx\x00", "<3 undecodable bytes>"),
        (b"wx\xff", "<3 undecodable bytes>"),
    ],
)
def test_another_appid_is_shown_only_when_printable(appid: bytes, shown: str) -> None:
    content = len(b"msg").to_bytes(4, "big") + b"msg" + appid
    error = _decrypted(_framed(content, 32 - (16 + len(content)) % 32))
    assert isinstance(error, AppIdMismatchError)
    assert (error.expected, error.actual) == (APPID, shown)


@pytest.mark.parametrize("text", ["QUJD!!!=", "QUJD\nRA==", "QU JD", "QUJD-_=="])
def test_base64_is_read_strictly(text: str) -> None:
    with pytest.raises(DecryptError) as info:
        decrypt(AESKey(KEY), text, appid=APPID)
    assert str(info.value) == "Encrypt is not valid base64"


def test_surrounding_whitespace_of_the_base64_is_ignored() -> None:
    ciphertext = _ciphertext(b"<xml/>")
    assert decrypt(AESKey(KEY), f"\n  {ciphertext}\t ", appid=APPID) == b"<xml/>"


def test_encrypt_needs_sixteen_random_bytes() -> None:
    for size in (0, 15, 17):
        with pytest.raises(ValueError) as info:
            encrypt(AESKey(KEY), b"m", appid=APPID, random_prefix=b"r" * size)
        assert str(info.value) == "random_prefix must be 16 bytes"


def test_a_malformed_key_error_states_the_rule() -> None:
    with pytest.raises(ValidationError) as info:
        AESKey("short", field="previous_encoding_aes_key")
    assert info.value.field == "previous_encoding_aes_key"
    assert info.value.limit == (
        "must be the 43 characters (a-z, A-Z, 0-9) set in the WeChat admin console"
    )


def test_require_cryptography_names_the_package_and_the_feature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wechat_kf.callback import MissingDependencyError
    from wechat_kf.callback._crypto import require_cryptography

    require_cryptography()  # installed: nothing happens
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)
    with pytest.raises(MissingDependencyError) as info:
        require_cryptography()
    assert (info.value.package, info.value.feature) == (
        "cryptography",
        "safe mode (encoding_aes_key)",
    )
    assert isinstance(info.value.__cause__, ImportError)


# --------------------------------------------------------------------------- handler, safe mode


def test_signature_is_checked_before_decryption() -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    query, body = FakeWeChat(encoding_aes_key=KEY).push(text_push())
    query["msg_signature"] = "0" * 40
    with pytest.raises(SignatureError, match="msg_signature does not match"):
        handler.parse(query, body)


def test_a_valid_plain_signature_does_not_authenticate_an_encrypted_push() -> None:
    # The known peer bug: checking `signature` (which does not cover the body) in safe mode.
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    query, body = FakeWeChat(encoding_aes_key=KEY).push(text_push())
    del query["msg_signature"]
    assert "signature" in query
    with pytest.raises(SignatureError, match="no 'msg_signature'"):
        handler.parse(query, body)


class TestDowngradeToPlainMode:
    """A captured query (timestamp, nonce, signature) must not carry a forged plaintext body."""

    forged = text_push("forged: transfer me", msg_id=1)

    def downgraded(self, encrypt_type: str | None) -> dict[str, str]:
        # One real push's query string, stripped of what marks it encrypted.
        query, _ = FakeWeChat(encoding_aes_key=KEY).push(text_push())
        del query["encrypt_type"], query["msg_signature"]
        if encrypt_type is not None:
            query["encrypt_type"] = encrypt_type
        return query

    @pytest.mark.parametrize("encrypt_type", [None, "raw", ""])
    def test_is_refused_in_safe_mode(self, encrypt_type: str | None) -> None:
        handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
        query = self.downgraded(encrypt_type)
        with pytest.raises(PlaintextPushError, match="allow_plaintext=True") as info:
            handler.parse(query, self.forged)
        assert isinstance(info.value, SignatureError)  # an authentication failure: 403
        with pytest.raises(PlaintextPushError):  # whatever the previous key
            CallbackHandler(
                token=TOKEN,
                appid=APPID,
                encoding_aes_key=KEY,
                previous_encoding_aes_key=OLD_KEY,
                timestamp_window=300,
                clock=lambda: NOW,
            ).parse(query, self.forged)

    def test_allow_plaintext_accepts_both_while_migrating(self) -> None:
        handler = CallbackHandler(
            token=TOKEN, appid=APPID, encoding_aes_key=KEY, allow_plaintext=True
        )
        plain = handler.parse(*FakeWeChat().push(text_push("plain")))
        assert isinstance(plain, TextMessage)
        assert (plain.content, plain.encrypted) == ("plain", False)
        encrypted = handler.parse(*FakeWeChat(encoding_aes_key=KEY).push(text_push("safe")))
        assert isinstance(encrypted, TextMessage)
        assert (encrypted.content, encrypted.encrypted) == ("safe", True)
        with pytest.raises(SignatureError):  # plaintext still needs a valid signature
            handler.parse(*FakeWeChat(token="otherToken").push(text_push()))

    def test_encrypted_pushes_and_the_url_check_still_work(self) -> None:
        handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
        fake = FakeWeChat(encoding_aes_key=KEY)
        assert handler.verify_url(fake.url_check("echo-1")) == "echo-1"  # plain-signed GET
        message = handler.parse(*fake.push(text_push("safe")))
        assert isinstance(message, TextMessage)
        assert message.encrypted


def test_plaintext_fields_next_to_encrypt_are_ignored() -> None:
    # Compatible mode: only the signed, encrypted copy is trusted.
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    inner = text_push("the real text")
    fake = FakeWeChat(encoding_aes_key=KEY)
    query, _ = fake.push(inner)
    encrypted = wechat_encrypt(KEY, APPID, inner, fake.random)
    forged = push_xml(
        {"ToUserName": "gh_forged", "MsgType": "text", "Content": "forged", "Encrypt": encrypted}
    )
    message = handler.parse(query, forged)
    assert isinstance(message, TextMessage)
    assert (message.content, message.to_user) == ("the real text", "gh_account0001")
    assert "forged" not in message.raw.values()


def test_encrypted_push_without_a_key_is_a_decrypt_error_after_authentication() -> None:
    # A safe-mode push (nothing but <Encrypt>) to a handler without the key: authenticated by
    # its plain signature first (as a compatibility-mode push would be), then refused.
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    query, body = FakeWeChat(encoding_aes_key=KEY).push(text_push())
    with pytest.raises(DecryptError, match="no encoding_aes_key is configured"):
        handler.parse(query, body)
    for forged in (
        {**query, "signature": "0" * 40},
        {k: v for k, v in query.items() if k != "signature"},
    ):
        with pytest.raises(SignatureError):
            handler.parse(forged, body)


class TestCompatibilityMode:
    """兼容模式: the plaintext fields and <Encrypt> together, signature and msg_signature both."""

    fake = FakeWeChat(encoding_aes_key=KEY)

    def test_a_handler_without_the_key_reads_the_plaintext(self) -> None:
        handler = CallbackHandler(token=TOKEN, appid=APPID)
        message = handler.parse(*self.fake.push(text_push("兼容", msg_id=3), compatible=True))
        assert isinstance(message, TextMessage)
        assert (message.content, message.msg_id, message.encrypted) == ("兼容", 3, False)
        assert "Encrypt" not in message.raw
        assert handler.reply(message, TransferCustomerService()).startswith(b"<xml><ToUser")

    def test_a_handler_without_the_key_checks_the_plain_signature(self) -> None:
        handler = CallbackHandler(token=TOKEN, appid=APPID)
        query, body = self.fake.push(text_push(), compatible=True)
        with pytest.raises(SignatureError, match="signature does not match"):
            handler.parse({**query, "signature": "0" * 40}, body)
        stale = FakeWeChat(encoding_aes_key=KEY, timestamp="100")
        with pytest.raises(StaleTimestampError):
            handler.parse(*stale.push(text_push(), compatible=True))

    def test_a_handler_with_the_key_decrypts(self) -> None:
        # The ciphertext wins: the plaintext beside it is not authenticated by msg_signature.
        handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
        query, body = self.fake.push(text_push("real", msg_id=4), compatible=True)
        tampered = body.replace(b"<![CDATA[real]]>", b"<![CDATA[forged]]>")
        message = handler.parse(query, tampered)
        assert isinstance(message, TextMessage)
        assert (message.content, message.encrypted) == ("real", True)
        assert b"<Encrypt>" in handler.reply(message, TransferCustomerService())

    def test_a_quoted_encrypt_in_the_users_text_does_not_hide_the_real_one(self) -> None:
        # A user writes "<Encrypt>QUJD</Encrypt>": in compatibility mode it sits in the
        # plaintext <Content> beside the real <Encrypt>; each candidate meets msg_signature.
        text = "<Encrypt>QUJD</Encrypt>"
        handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
        message = handler.parse(*self.fake.push(text_push(text), compatible=True))
        assert isinstance(message, TextMessage)
        assert message.content == text


def test_appid_mismatch_through_the_handler() -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    query, body = FakeWeChat(encoding_aes_key=KEY, appid="wxSOMEONEELSE").push(text_push())
    with pytest.raises(AppIdMismatchError):
        handler.parse(query, body)


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=40).map(lambda b: b * 16))
def test_block_decryption_is_cbc_with_the_key_as_iv(raw_key: bytes, data: bytes) -> None:
    # The decryptor is reused (ECB) and the chaining done by hand: exactly CBC, on any data.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = AESKey(base64.b64encode(raw_key).decode()[:43].replace("+", "a").replace("/", "b"))
    for _ in range(2):  # the second call reuses the decryptor: no state carried over
        reference = Cipher(algorithms.AES(key._key), modes.CBC(key._key[:16])).decryptor()
        assert key.decrypt_blocks(data) == reference.update(data) + reference.finalize()


# --------------------------------------------------------------------------- key rotation


class TestKeyRotation:
    handler = CallbackHandler(
        token=TOKEN, appid=APPID, encoding_aes_key=KEY, previous_encoding_aes_key=OLD_KEY
    )

    @pytest.mark.parametrize(("key", "previous"), [(KEY, False), (OLD_KEY, True)])
    def test_either_key_opens_and_the_reply_uses_the_same(self, key: str, previous: bool) -> None:
        fake = FakeWeChat(encoding_aes_key=key)
        message = self.handler.parse(*fake.push(text_push("hi")))
        assert message.decrypted_with_previous_key is previous
        reply = self.handler.reply(message, TextReply(content="hello"))
        plain = fake.open_reply(reply, key=key)
        assert b"<Content><![CDATA[hello]]></Content>" in plain
        other = OLD_KEY if key == KEY else KEY
        with pytest.raises(AssertionError):
            fake.open_reply(reply, key=other)

    def test_a_third_key_reports_the_current_keys_error(self) -> None:
        third = "Q" * 43
        query, body = FakeWeChat(encoding_aes_key=third).push(text_push())
        with pytest.raises((DecryptError, AppIdMismatchError)):
            self.handler.parse(query, body)

    def test_real_appid_mismatch_is_reported_even_with_two_keys(self) -> None:
        query, body = FakeWeChat(encoding_aes_key=KEY, appid="wxSOMEONEELSE").push(text_push())
        with pytest.raises(AppIdMismatchError) as info:
            self.handler.parse(query, body)
        assert info.value.actual == "wxSOMEONEELSE"


def test_encrypted_transfer_reply_round_trips() -> None:
    handler = CallbackHandler(
        token=TOKEN, appid=APPID, encoding_aes_key=KEY, timestamp_window=None, clock=lambda: 1e9
    )
    fake = FakeWeChat(encoding_aes_key=KEY)
    message = handler.parse(*fake.push(text_push()))
    reply = handler.reply(message, TransferCustomerService(kf_account="kf2001@mywechat"))
    assert fake.open_reply(reply) == (
        b"<xml><ToUserName><![CDATA[oUser_openid_0000000000001]]></ToUserName>"
        b"<FromUserName><![CDATA[gh_account0001]]></FromUserName><CreateTime>1000000000"
        b"</CreateTime><MsgType><![CDATA[transfer_customer_service]]></MsgType><TransInfo>"
        b"<KfAccount><![CDATA[kf2001@mywechat]]></KfAccount></TransInfo></xml>"
    )
    assert b"<TimeStamp>1000000000</TimeStamp>" in reply


# --------------------------------------------------------------------------- keys and the extra


@pytest.mark.parametrize(
    "bad", [KEY[:-1], KEY + "A", KEY[:-1] + "+", KEY[:-1] + "=", " " + KEY[1:], ""]
)
def test_malformed_keys_are_refused_without_echoing_them(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=bad)
    assert info.value.field == "encoding_aes_key"
    assert info.value.value is None
    if bad:
        assert bad not in str(info.value)
        assert bad not in repr(info.value)


def test_aes_key_repr_hides_the_key() -> None:
    key = AESKey(KEY)
    assert repr(key) == str(key) == "AESKey(<hidden>)"


_BLOCK_CRYPTOGRAPHY = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "cryptography" or name.startswith("cryptography."):
                raise ImportError(f"blocked {name}")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def test_plain_mode_works_without_cryptography_and_safe_mode_says_what_to_install() -> None:
    script = _BLOCK_CRYPTOGRAPHY + textwrap.dedent(
        f"""
        from wechat_kf.callback import CallbackHandler, MissingDependencyError, CallbackError
        import wechat_kf.callback._crypto, wechat_kf.callback._endpoint
        heavy = {{"cryptography", "defusedxml", "starlette", "aiohttp", "fastapi", "uvicorn"}}
        assert not heavy & {{m.split(".")[0] for m in sys.modules}}
        handler = CallbackHandler(token={TOKEN!r}, appid={APPID!r})
        try:
            CallbackHandler(token={TOKEN!r}, appid={APPID!r}, encoding_aes_key={KEY!r})
        except MissingDependencyError as exc:
            assert isinstance(exc, ImportError) and isinstance(exc, CallbackError)
            assert {KEY!r} not in str(exc)
            print(exc)
        """
    )
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "safe mode (encoding_aes_key) needs the 'cryptography' package: "
        "pip install 'wechat_kf[callback]'"
    )
