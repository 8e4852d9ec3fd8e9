"""The receiving side: what WeChat pushes to your server, verified, decrypted and typed.

::

    from wechat_kf.callback import CallbackHandler, TextMessage, TransferCustomerService

    handler = CallbackHandler(token="...", appid="wx...", encoding_aes_key=None)
    echostr = handler.verify_url(query)            # the GET with echostr
    incoming = handler.parse(query, body)          # a POST: verified, decrypted, typed
    if isinstance(incoming, TextMessage):
        body = handler.reply(incoming, TransferCustomerService())

Framework-neutral (a query mapping and bytes in, bytes out); :class:`CallbackEndpoint` adds
the HTTP decisions and duplicate detection (every retry of a push gets its first answer), and
:mod:`wechat_kf.callback.starlette` and :mod:`wechat_kf.callback.aiohttp` plug it into those
frameworks. Given your ``AsyncWeChat`` (``CallbackEndpoint(..., wechat=wx)``), the endpoint
answers bots that take longer than WeChat's 5 seconds: ``success`` at the deadline, the answer
sent later (in parts, "typing..." meanwhile), the work never run twice for WeChat's retries.
Safe by default: pushes signed more than 300 s from this server's clock are refused
and every endpoint deduplicates (in memory; ``RedisDuplicateStore`` to share between worker
processes). Safe mode (``encoding_aes_key``) needs ``pip install 'wechat_kf[callback]'``; plain
mode needs nothing beyond the SDK.
"""

from wechat_kf.callback._clock import Clock, SystemClock
from wechat_kf.callback._dedupe import (
    Deduplicator,
    DuplicateEntry,
    DuplicateState,
    DuplicateStore,
    MemoryDuplicateStore,
    dedupe_key,
)
from wechat_kf.callback._delivery import (
    Answer,
    AnswerPart,
    Delivery,
    DeliveryFailure,
    FailureReason,
    OnDeliveryFailed,
)
from wechat_kf.callback._endpoint import CallbackEndpoint, HTTPAnswer, OnMessage
from wechat_kf.callback._errors import (
    AppIdMismatchError,
    BodyTooLargeError,
    CallbackError,
    DecryptError,
    DuplicateStoreError,
    HostileXMLError,
    MalformedCallbackError,
    MissingDependencyError,
    PlaintextPushError,
    SignatureError,
    StaleTimestampError,
    XMLLimitError,
    XMLParseError,
)
from wechat_kf.callback._handler import CallbackHandler
from wechat_kf.callback._messages import (
    Event,
    ImageMessage,
    Incoming,
    KfCloseSession,
    KfCreateSession,
    KfSwitchSession,
    LinkMessage,
    LocationMessage,
    ShortVideoMessage,
    TextMessage,
    UnknownMessage,
    UserMessage,
    VideoMessage,
    VoiceMessage,
)
from wechat_kf.callback._redis_dedupe import RedisDuplicateStore
from wechat_kf.callback._replies import (
    SUCCESS,
    ImageReply,
    MusicReply,
    NewsReply,
    Reply,
    Success,
    TextReply,
    TransferCustomerService,
    VideoReply,
    VoiceReply,
)
from wechat_kf.callback._split import split_text

__all__ = [
    "SUCCESS",
    "Answer",
    "AnswerPart",
    "AppIdMismatchError",
    "BodyTooLargeError",
    "CallbackEndpoint",
    "CallbackError",
    "CallbackHandler",
    "Clock",
    "DecryptError",
    "Deduplicator",
    "Delivery",
    "DeliveryFailure",
    "DuplicateEntry",
    "DuplicateState",
    "DuplicateStore",
    "DuplicateStoreError",
    "Event",
    "FailureReason",
    "HTTPAnswer",
    "HostileXMLError",
    "ImageMessage",
    "ImageReply",
    "Incoming",
    "KfCloseSession",
    "KfCreateSession",
    "KfSwitchSession",
    "LinkMessage",
    "LocationMessage",
    "MalformedCallbackError",
    "MemoryDuplicateStore",
    "MissingDependencyError",
    "MusicReply",
    "NewsReply",
    "OnDeliveryFailed",
    "OnMessage",
    "PlaintextPushError",
    "RedisDuplicateStore",
    "Reply",
    "ShortVideoMessage",
    "SignatureError",
    "StaleTimestampError",
    "Success",
    "SystemClock",
    "TextMessage",
    "TextReply",
    "TransferCustomerService",
    "UnknownMessage",
    "UserMessage",
    "VideoMessage",
    "VideoReply",
    "VoiceMessage",
    "VoiceReply",
    "XMLLimitError",
    "XMLParseError",
    "dedupe_key",
    "split_text",
]
