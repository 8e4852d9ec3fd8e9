"""``CallbackHandler``: the framework-neutral receiving side (query and bytes in, bytes out)."""

from __future__ import annotations

import math
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Final

from wechat_kf._errors import ValidationError
from wechat_kf.callback._crypto import AESKey, decrypt, encrypt, require_cryptography
from wechat_kf.callback._defaults import MAX_BODY_SIZE, TIMESTAMP_WINDOW
from wechat_kf.callback._errors import (
    AppIdMismatchError,
    BodyTooLargeError,
    DecryptError,
    MalformedCallbackError,
    PlaintextPushError,
    SignatureError,
    StaleTimestampError,
)
from wechat_kf.callback._messages import Event, Incoming, incoming_from_fields
from wechat_kf.callback._replies import SUCCESS, Reply, Success, TransferCustomerService
from wechat_kf.callback._signature import compute_signature, signature_matches
from wechat_kf.callback._xml import XMLValue, build_xml, encrypt_candidates, parse_fields

__all__ = ["CallbackHandler"]

_TOKEN: Final = re.compile(r"[!-~]{1,128}")  # WeChat asks for 3-32 letters or digits
_APPID: Final = re.compile(r"[!-~]{1,64}")  # printable ASCII, no spaces
_TIMESTAMP: Final = re.compile(r"[0-9]{1,20}")
_NO_KEY: Final = (
    "the push is encrypted (encrypt_type=aes) and carries no plaintext, but no "
    "encoding_aes_key is configured: set the EncodingAESKey of the WeChat admin console"
)


class CallbackHandler:
    """Verify, decrypt, parse and answer what WeChat pushes to your server URL.

    ``token`` and ``appid`` are the values of the WeChat admin console (Settings and
    development → Basic configuration → Server configuration). ``encoding_aes_key`` (43
    characters) enables safe mode; ``previous_encoding_aes_key`` keeps the previous key working
    while you rotate it. Safe mode needs ``pip install 'wechat_kf[callback]'``.

    In safe mode every push must be encrypted (``encrypt_type=aes``): a plaintext push is
    refused with :class:`PlaintextPushError`, because its ``signature`` covers the query and not
    the body (a captured query string would let anyone post any XML). ``allow_plaintext=True``
    accepts plaintext pushes as well, for the migration window while the admin console still
    sends them; remove it once the console is in safe mode. The URL check (GET with
    ``echostr``) is plain-signed in every mode.

    Compatibility mode (兼容模式) pushes carry the plaintext fields and ``<Encrypt>`` together,
    with both signatures: a handler with a key decrypts them (``msg_signature``), a handler
    without one checks ``signature`` and reads the plaintext, exactly as in plain mode.

    ``timestamp_window`` (seconds, 300 by default) refuses pushes whose signed timestamp is
    further than that from this server's clock: replay protection, on top of duplicate
    detection. ``None`` turns it off (for tests replaying old recorded pushes).
    ``max_body_size`` caps the body in bytes; ``clock`` returns Unix time (for tests).

    Nothing a request sends is parsed before it is authenticated as far as its mode allows: an
    encrypted push's envelope is only scanned for ``<Encrypt>`` (never parsed) until
    ``msg_signature`` matches; a plaintext push is parsed once ``signature`` matches, by a
    parser bounded in size, elements and depth.

    The handler holds no I/O and no per-request state: share one instance. Its ``repr`` shows
    the appid only; the token and keys never appear in a repr or an exception.
    """

    __slots__ = (
        "_allow_plaintext",
        "_appid",
        "_clock",
        "_keys",
        "_max_body_size",
        "_timestamp_window",
        "_token",
    )

    def __init__(
        self,
        *,
        token: str,
        appid: str,
        encoding_aes_key: str | None = None,
        previous_encoding_aes_key: str | None = None,
        allow_plaintext: bool = False,
        timestamp_window: float | None = TIMESTAMP_WINDOW,
        max_body_size: int = MAX_BODY_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise ValidationError("token", "must be the token set in WeChat (printable ASCII)")
        if not isinstance(appid, str) or not _APPID.fullmatch(appid):
            raise ValidationError("appid", "must be the AppID (printable ASCII, no spaces)", appid)
        if previous_encoding_aes_key is not None and encoding_aes_key is None:
            raise ValidationError(
                "previous_encoding_aes_key", "needs encoding_aes_key (the current key) as well"
            )
        if not isinstance(allow_plaintext, bool):
            raise ValidationError("allow_plaintext", "must be a bool", allow_plaintext)
        if timestamp_window is not None and not (
            math.isfinite(timestamp_window) and timestamp_window > 0
        ):
            raise ValidationError("timestamp_window", "must be a positive number of seconds")
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int):
            raise ValidationError("max_body_size", "must be an int (bytes)", max_body_size)
        if max_body_size <= 0:
            raise ValidationError("max_body_size", "must be positive", max_body_size)
        keys: list[AESKey] = []
        if encoding_aes_key is not None:
            keys.append(AESKey(encoding_aes_key))
            if previous_encoding_aes_key is not None:
                keys.append(AESKey(previous_encoding_aes_key, field="previous_encoding_aes_key"))
            require_cryptography()
        self._token = token
        self._appid = appid
        self._keys: tuple[AESKey, ...] = tuple(keys)
        self._allow_plaintext = allow_plaintext or not keys
        self._timestamp_window = timestamp_window
        self._max_body_size = max_body_size
        self._clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(appid={self._appid!r})"

    @property
    def appid(self) -> str:
        """The official account's AppID."""
        return self._appid

    @property
    def safe_mode(self) -> bool:
        """Whether an EncodingAESKey is configured (encrypted pushes can be read)."""
        return bool(self._keys)

    @property
    def accepts_plaintext(self) -> bool:
        """Whether plaintext pushes are accepted: in plain mode, or with ``allow_plaintext``."""
        return self._allow_plaintext

    @property
    def max_body_size(self) -> int:
        """The largest body accepted, in bytes."""
        return self._max_body_size

    # ------------------------------------------------------------------------------ receiving

    def verify_url(self, query: Mapping[str, str]) -> str:
        """Check WeChat's URL verification (the GET with ``echostr``); return ``echostr``.

        Answer the GET with exactly the returned text. Raises :class:`SignatureError`,
        :class:`StaleTimestampError` or :class:`MalformedCallbackError` (no ``echostr``).
        """
        timestamp = self._check_query_signature(query)
        self._check_freshness(timestamp)
        echostr = query.get("echostr")
        if echostr is None:
            raise MalformedCallbackError("the URL check has no echostr query parameter")
        return echostr

    def parse(self, query: Mapping[str, str], body: bytes | bytearray) -> Incoming:
        """Verify a push, decrypt it when it is encrypted, and return its typed model.

        ``query`` is the request's query string as a mapping, ``body`` its raw bytes. Raises a
        :class:`CallbackError` subclass for every refusal, nothing else (a ``TypeError`` for
        arguments of the wrong type, a bug in the caller). In safe mode a push without
        ``encrypt_type=aes`` is refused with :class:`PlaintextPushError` unless the handler was
        built with ``allow_plaintext=True``. Without a key, an ``encrypt_type=aes`` push is read
        from its plaintext fields (compatibility mode); one that has none (safe mode) raises
        :class:`DecryptError`.
        """
        if not isinstance(body, (bytes, bytearray)):
            raise TypeError(f"body must be the raw request bytes, not {type(body).__name__}")
        if len(body) > self._max_body_size:
            raise BodyTooLargeError(len(body), self._max_body_size)
        encrypt_type = query.get("encrypt_type", "raw")
        if encrypt_type == "aes":
            if self._keys:
                return self._parse_encrypted(query, body)
            return self._parse_compatible(query, body)
        if encrypt_type not in ("", "raw"):
            raise MalformedCallbackError(f"unknown encrypt_type {encrypt_type[:20]!r}")
        if not self._allow_plaintext:
            # signature covers token, timestamp and nonce only: accepting plaintext here would
            # let anyone holding one real push's query string post any body (a downgrade).
            raise PlaintextPushError(
                "a plaintext push (no encrypt_type=aes) reached a handler in safe mode: refused, "
                "since its signature does not cover the body. If the WeChat admin console is "
                "still in plain mode, switch it to safe mode (or pass allow_plaintext=True "
                "while migrating)"
            )
        return incoming_from_fields(self._plain_fields(query, body))

    def _plain_fields(self, query: Mapping[str, str], body: bytes | bytearray) -> dict[str, str]:
        """Check ``signature`` and freshness, then parse the body (bounded)."""
        timestamp = self._check_query_signature(query)
        self._check_freshness(timestamp)
        return parse_fields(body, max_size=self._max_body_size)

    def _parse_compatible(self, query: Mapping[str, str], body: bytes | bytearray) -> Incoming:
        # Compatibility mode, no key: the plaintext beside <Encrypt> is the message, under the
        # plain signature, as in plain mode. A safe-mode push (nothing but <Encrypt>) cannot be
        # read without the key.
        fields = self._plain_fields(query, body)
        fields.pop("Encrypt", None)
        if "MsgType" not in fields:
            raise DecryptError(_NO_KEY)
        return incoming_from_fields(fields)

    def _parse_encrypted(self, query: Mapping[str, str], body: bytes | bytearray) -> Incoming:
        # The envelope is not authenticated (msg_signature covers <Encrypt> alone) and nothing
        # in it but <Encrypt> is needed: it is scanned, never parsed, and nothing is decrypted
        # or parsed before msg_signature matches.
        candidates = encrypt_candidates(body)
        timestamp, nonce = _required(query, "timestamp"), _required(query, "nonce")
        received = _required(query, "msg_signature")
        for ciphertext in candidates:
            expected = compute_signature(self._token, timestamp, nonce, ciphertext)
            if signature_matches(expected, received):
                break
        else:
            raise SignatureError(
                "msg_signature does not match: the push is not from WeChat, or the token "
                "differs from the one set in the WeChat admin console"
            )
        self._check_freshness(timestamp)
        message, previous = self._decrypt(ciphertext)
        return incoming_from_fields(
            parse_fields(message, max_size=self._max_body_size),
            encrypted=True,
            decrypted_with_previous_key=previous,
        )

    def _check_query_signature(self, query: Mapping[str, str]) -> str:
        """Check ``signature`` over token, timestamp and nonce; return the timestamp."""
        received = _required(query, "signature")
        timestamp, nonce = _required(query, "timestamp"), _required(query, "nonce")
        if not signature_matches(compute_signature(self._token, timestamp, nonce), received):
            raise SignatureError(
                "signature does not match: the request is not from WeChat, or the token "
                "differs from the one set in the WeChat admin console"
            )
        return timestamp

    def _check_freshness(self, timestamp: str) -> None:
        window = self._timestamp_window
        if window is None:
            return
        now = self._clock()
        if not _TIMESTAMP.fullmatch(timestamp):
            raise StaleTimestampError(None, now, window)
        value = int(timestamp)
        if abs(now - value) > window:
            raise StaleTimestampError(value, now, window)

    def _decrypt(self, ciphertext: str) -> tuple[bytes, bool]:
        """Decrypt with the current key, then the previous one; say whether the previous won."""
        current, *previous = self._keys
        try:
            return decrypt(current, ciphertext, appid=self._appid), False
        except (DecryptError, AppIdMismatchError) as exc:
            if not previous:
                raise
            error = exc
        try:
            return decrypt(previous[0], ciphertext, appid=self._appid), True
        except (DecryptError, AppIdMismatchError):
            raise error from error.__cause__

    # ------------------------------------------------------------------------------ answering

    def reply(self, incoming: Incoming, reply: Reply | None) -> bytes:
        """Return the response body answering ``incoming`` with ``reply``.

        ``None`` and :class:`Success` give ``b"success"`` (never encrypted). Other replies
        are XML addressed back to the user, encrypted (with the key that opened the push) when
        the push was encrypted. Raises :class:`~wechat_kf.ValidationError` for a reply WeChat
        would refuse, such as transferring an event to customer service.
        """
        if reply is None or isinstance(reply, Success):
            return SUCCESS
        if isinstance(reply, TransferCustomerService) and isinstance(incoming, Event):
            raise ValidationError(
                "reply", "transfer_customer_service answers user messages only, not events"
            )
        now = int(self._clock())
        fields: dict[str, XMLValue] = {
            "ToUserName": incoming.from_user,
            "FromUserName": incoming.to_user,
            "CreateTime": now,
            **reply.xml_fields(),
        }
        try:
            plain = build_xml(fields)
        except ValueError as exc:
            raise ValidationError("reply", str(exc)) from None
        if not incoming.encrypted:
            return plain
        return self._encrypt_reply(plain, now, previous=incoming.decrypted_with_previous_key)

    def _encrypt_reply(self, plain: bytes, now: int, *, previous: bool) -> bytes:
        if not self._keys:
            raise ValidationError(
                "incoming", "was encrypted, but this handler has no encoding_aes_key"
            )
        key = self._keys[1] if previous else self._keys[0]
        ciphertext = encrypt(key, plain, appid=self._appid, random_prefix=os.urandom(16))
        timestamp = str(now)
        # Ten random digits (shifting either bound by one is invisible: not mutated).
        nonce = str(1_000_000_000 + secrets.randbelow(9_000_000_000))  # pragma: no mutate
        return build_xml(
            {
                "Encrypt": ciphertext,
                "MsgSignature": compute_signature(self._token, timestamp, nonce, ciphertext),
                "TimeStamp": now,
                "Nonce": nonce,
            }
        )


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if value is None:
        raise SignatureError(f"the request has no {name!r} query parameter")
    if not isinstance(value, str):
        raise TypeError(
            f"query[{name!r}] is a {type(value).__name__}: pass the query string as a "
            "Mapping[str, str] (one value per name)"
        )
    return value
