"""Every exception the callback (receiving) side raises.

A request WeChat pushes to your server is refused with one of these; none of them is ever a raw
parser or crypto exception (the original, when there is one, is chained as ``__cause__``)::

    WeChatError
    └── CallbackError                  a callback request was refused
        ├── SignatureError             signature / msg_signature missing or wrong
        │   └── PlaintextPushError     safe mode: a push without encrypt_type=aes (a downgrade?)
        ├── StaleTimestampError        timestamp outside the freshness window (.timestamp .now)
        ├── AppIdMismatchError         the decrypted message names another appid (.expected .actual)
        ├── DecryptError               Encrypt cannot be decrypted (base64, length, padding, no key)
        ├── BodyTooLargeError          body above max_body_size (.size .limit)
        ├── XMLParseError              the body is not well-formed XML
        │   ├── HostileXMLError        DOCTYPE, entity declaration or external entity: refused
        │   └── XMLLimitError          too many elements, or nested too deep (.kind .limit)
        ├── MalformedCallbackError     well-formed, but not the documented shape (missing field)
        ├── DuplicateStoreError        the shared duplicate store (Redis) failed (a StoreError)
        └── MissingDependencyError     (also ImportError) safe mode without ``cryptography``

No text built here carries the token, the EncodingAESKey or an expected signature: a signature
computed from the token for an attacker-chosen timestamp would be a forging oracle.
"""

from __future__ import annotations

from wechat_kf._errors import StoreError, WeChatError

__all__ = [
    "AppIdMismatchError",
    "BodyTooLargeError",
    "CallbackError",
    "DecryptError",
    "DuplicateStoreError",
    "HostileXMLError",
    "MalformedCallbackError",
    "MissingDependencyError",
    "PlaintextPushError",
    "SignatureError",
    "StaleTimestampError",
    "XMLLimitError",
    "XMLParseError",
]

#: What to install for safe mode; quoted in :class:`MissingDependencyError`.
INSTALL_HINT = "pip install 'wechat_kf[callback]'"


class CallbackError(WeChatError):
    """A request WeChat pushed (or claims to have pushed) was refused."""


class SignatureError(CallbackError):
    """``signature`` (plain mode, URL check) or ``msg_signature`` (safe mode) is missing or wrong.

    The request did not come from WeChat, or the configured token is not the one set in the
    WeChat admin console.
    """


class PlaintextPushError(SignatureError):
    """A handler in safe mode (``encoding_aes_key`` set) got a push without ``encrypt_type=aes``.

    A plaintext push carries only ``signature``, which covers the query (token, timestamp,
    nonce) and not the body: whoever saw one real push's query string could post any XML
    under it. So once a key is configured, only encrypted pushes (``msg_signature`` covers the
    ciphertext) are accepted. If WeChat itself sends plaintext, the admin console is still in
    plain mode: switch it to safe mode, or pass ``allow_plaintext=True`` meanwhile.
    """


class StaleTimestampError(CallbackError):
    """The signed ``timestamp`` lies outside the configured freshness window (a replay?).

    ``timestamp`` is the request's value (``None`` when it is not an integer), ``now`` the
    server's clock and ``window`` the allowed distance in seconds. A legitimate push refused
    here means this server's clock is wrong: check NTP.
    """

    def __init__(self, timestamp: int | None, now: float, window: float) -> None:
        self.timestamp = timestamp
        self.now = now
        self.window = window
        if timestamp is None:
            text = "timestamp is not an integer"
        else:
            text = (
                f"timestamp {timestamp} is {abs(now - timestamp):.0f} s away from this server's "
                f"clock ({now:.0f}); the window is {window:g} s (a replay, or a wrong clock)"
            )
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.timestamp, self.now, self.window))


class AppIdMismatchError(CallbackError):
    """The decrypted message ends with another appid than the handler's.

    The message was encrypted for another official account that shares this URL and key, or
    the handler is configured with the wrong appid.
    """

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"message is for appid {actual!r}, this handler serves {expected!r}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.expected, self.actual))


class DecryptError(CallbackError):
    """The ``Encrypt`` element cannot be decrypted with the configured EncodingAESKey(s).

    Causes: not base64, not whole AES blocks, bad padding, an impossible length prefix, the
    request is encrypted but no key is configured, or the key is not the one WeChat uses.
    """


class BodyTooLargeError(CallbackError):
    """The body is larger than the handler's ``max_body_size`` (nothing was parsed)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"body of {size} bytes or more exceeds the limit of {limit} bytes")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.size, self.limit))


class XMLParseError(CallbackError):
    """The body is not well-formed XML, or its root is not ``<xml>``."""


class HostileXMLError(XMLParseError):
    """The XML holds a DOCTYPE, an entity declaration or an external entity: refused unread.

    WeChat never sends any of these; they are how XXE and entity-expansion ("billion laughs")
    attacks are built.
    """


class XMLLimitError(XMLParseError):
    """The XML holds more elements, or nests them deeper, than the parser accepts.

    ``kind`` is ``"elements"`` or ``"depth"`` and ``limit`` the bound that was crossed
    (``MAX_XML_ELEMENTS``, ``MAX_XML_DEPTH``). Parsing stops the moment it is crossed, so a
    hostile body of tens of thousands of elements costs no more than a real push.
    """

    def __init__(self, kind: str, limit: int) -> None:
        self.kind = kind
        self.limit = limit
        if kind == "depth":
            text = f"XML nested deeper than {limit} elements"
        else:
            text = f"XML with more than {limit} elements (WeChat's pushes hold far fewer)"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.kind, self.limit))


class MalformedCallbackError(CallbackError):
    """The request is well-formed but not the documented shape.

    A required element is missing or repeated, a number is not a number, ``echostr`` is
    missing from a URL check, or ``encrypt_type`` names an unknown scheme.
    """


class DuplicateStoreError(CallbackError, StoreError):
    """The shared duplicate store (Redis) failed or timed out; ``__cause__`` says why."""


class MissingDependencyError(CallbackError, ImportError):
    """Safe mode (EncodingAESKey) needs the ``cryptography`` package.

    Install the extra: ``pip install 'wechat_kf[callback]'``.
    """

    def __init__(self, package: str, feature: str) -> None:
        self.package = package
        self.feature = feature
        super().__init__(f"{feature} needs the {package!r} package: {INSTALL_HINT}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.package, self.feature))
