"""A stand-in for WeChat's push side, written from the documented algorithm only.

It signs and encrypts with ``hashlib`` and ``cryptography`` directly, never through
``wechat_kf.callback``: tests that feed its output to the handler cross-check both sides.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# The official samples (Tencent's WXBizMsgCrypt, Python/Java/C# editions), verified vectors.
SAMPLE_KEY: Final = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OFFICIAL_PUSH: Final[dict[str, str]] = {
    "token": "spamtest",
    "appid": "wx2c2769f8efd9abc2",
    "timestamp": "1409735669",
    "nonce": "1320562132",
    "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
    "encrypt": (
        "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6"
        "F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T33"
        "2jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCg"
        "avjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6Oewp"
        "usjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
    ),
}
# What OFFICIAL_PUSH decrypts to.
OFFICIAL_PLAINTEXT: Final = (
    b"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    b"<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    b"<CreateTime>1409735668</CreateTime>\n"
    b"<MsgType><![CDATA[text]]></MsgType>\n"
    b"<Content><![CDATA[abcdteT]]></Content>\n"
    b"<MsgId>6054768590064713728</MsgId>\n"
    b"</xml>"
)
# The C# sample: another key, a pad of 30 bytes (proves padding to 32, not 16).
OFFICIAL_PUSH_2: Final[dict[str, str]] = {
    "token": "QDG6eK",
    "appid": "wx5823bf96d3bd56c7",
    "key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "timestamp": "1409659813",
    "nonce": "1372623149",
    "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
    "encrypt": (
        "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3Qczc"
        "dCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLj"
        "vd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMn"
        "vw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k"
        "22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2Yoy"
        "yH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
    ),
}
# The Java sample's encryption vectors: fixed random prefix, known ciphertext.
OFFICIAL_ENCRYPT_APPID: Final = "wxb11529c136998cb6"
OFFICIAL_ENCRYPT_RANDOM: Final = b"aaaabbbbccccdddd"
OFFICIAL_ENCRYPT_CASES: Final[list[tuple[bytes, str]]] = [
    (
        "我是中文abcd123".encode(),
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==",
    ),
    (
        "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName>"
        "<FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423"
        "</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA["
        "eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId>"
        "<Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA["
        "testCallBackReplyVideo]]></Description></Video></xml>".encode(),
        "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWe"
        "sxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTII"
        "LHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iS"
        "vOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTm"
        "FQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xk"
        "a042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcIL"
        "vApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudY"
        "R/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb",
    ),
]

TOKEN: Final = "tokenABC123"
APPID: Final = "wx0123456789abcdef"
KEY: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
OLD_KEY: Final = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
ACCOUNT: Final = "gh_account0001"
OPENID: Final = "oUser_openid_0000000000001"
NOW: Final = 1_700_000_000


def sha1_signature(*parts: str) -> str:
    """The documented signature: sha1 of the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


def wechat_encrypt(encoding_aes_key: str, appid: str, message: bytes, random: bytes) -> str:
    key = aes_key(encoding_aes_key)
    plain = random + struct.pack(">I", len(message)) + message + appid.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def wechat_decrypt(encoding_aes_key: str, encrypted: str) -> tuple[bytes, bytes, bytes]:
    """Return (random prefix, message, appid) after checking the padding strictly."""
    key = aes_key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    pad = plain[-1]
    assert 1 <= pad <= 32
    assert plain[-pad:] == bytes([pad]) * pad
    plain = plain[:-pad]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[:16], plain[20 : 20 + length], plain[20 + length :]


def push_xml(fields: Mapping[str, str | int]) -> bytes:
    """WeChat's push shape: text in CDATA, numbers bare."""
    parts = []
    for tag, value in fields.items():
        inner = str(value) if isinstance(value, int) else f"<![CDATA[{value}]]>"
        parts.append(f"<{tag}>{inner}</{tag}>")
    return ("<xml>" + "".join(parts) + "</xml>").encode()


def _now() -> str:
    return str(int(time.time()))


@dataclass
class FakeWeChat:
    """Builds the requests WeChat sends and reads the replies it gets.

    Requests are signed with the current time (fresh for the handlers' default 300 s window)
    (at the moment each is built: fresh for the handlers' default 300 s window however long the
    test session runs) unless ``timestamp`` says otherwise.
    """

    token: str = TOKEN
    appid: str = APPID
    encoding_aes_key: str | None = None
    timestamp: str | None = None
    nonce: str = "1234567890"
    random: bytes = b"R" * 16

    def stamp(self) -> str:
        """The timestamp to sign with: ``timestamp``, or now."""
        return _now() if self.timestamp is None else self.timestamp

    def url_check(self, echostr: str = "echo-4075181314397890557") -> dict[str, str]:
        timestamp = self.stamp()
        return {
            "signature": sha1_signature(self.token, timestamp, self.nonce),
            "timestamp": timestamp,
            "nonce": self.nonce,
            "echostr": echostr,
        }

    def push(
        self, message: bytes, *, encrypt: bool | None = None, compatible: bool = False
    ) -> tuple[dict[str, str], bytes]:
        """(query, body) of a push; encrypted when the fake has a key (or ``encrypt``).

        ``compatible``: compatibility mode (兼容模式), the plaintext fields and ``<Encrypt>``
        together in the body, ``signature`` and ``msg_signature`` both in the query.
        """
        timestamp = self.stamp()
        query = {
            "signature": sha1_signature(self.token, timestamp, self.nonce),
            "timestamp": timestamp,
            "nonce": self.nonce,
            "openid": OPENID,
        }
        if encrypt is None:
            encrypt = self.encoding_aes_key is not None
        if not encrypt:
            return query, message
        assert self.encoding_aes_key is not None
        encrypted = wechat_encrypt(self.encoding_aes_key, self.appid, message, self.random)
        query["encrypt_type"] = "aes"
        query["msg_signature"] = sha1_signature(self.token, timestamp, self.nonce, encrypted)
        if compatible:
            assert message.endswith(b"</xml>")
            return query, message[: -len(b"</xml>")] + push_xml({"Encrypt": encrypted})[5:]
        body = push_xml({"ToUserName": ACCOUNT, "Encrypt": encrypted})
        return query, body

    def open_reply(self, body: bytes, *, key: str | None = None) -> bytes:
        """Check an encrypted reply as WeChat does; return its plaintext XML."""
        root = ElementTree.fromstring(body)
        assert [child.tag for child in root] == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
        encrypted = root.findtext("Encrypt") or ""
        timestamp = root.findtext("TimeStamp") or ""
        nonce = root.findtext("Nonce") or ""
        assert root.findtext("MsgSignature") == sha1_signature(
            self.token, timestamp, nonce, encrypted
        )
        key = key or self.encoding_aes_key
        assert key is not None
        _random, message, appid = wechat_decrypt(key, encrypted)
        assert appid == self.appid.encode()
        return message


def text_push(
    content: str = "hello", msg_id: int = 6054768590064713728, **extra: str | int
) -> bytes:
    return push_xml(
        {
            "ToUserName": ACCOUNT,
            "FromUserName": OPENID,
            "CreateTime": NOW,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
            **extra,
        }
    )


def event_push(event: str, **extra: str | int) -> bytes:
    return push_xml(
        {
            "ToUserName": ACCOUNT,
            "FromUserName": OPENID,
            "CreateTime": NOW,
            "MsgType": "event",
            "Event": event,
            **extra,
        }
    )
