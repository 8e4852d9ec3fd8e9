"""wechat_kf: an async, typed SDK for the WeChat Official Account customer-service API.

Start with :class:`AsyncWeChat`; its ``kf``, ``message``, ``session`` and ``records`` areas
cover the whole customer-service API. Every exception derives from :class:`WeChatError`.
"""

from typing import TYPE_CHECKING, Any

from wechat_kf._client import AsyncWeChat
from wechat_kf._errors import (
    ERRCODE_CLASSES,
    AccessTokenError,
    APIError,
    ConfigurationError,
    ConnectFailedError,
    ConnectionLostError,
    CustomerServiceError,
    DailyQuotaError,
    ForceRefreshLimitedError,
    HTTPStatusError,
    InvalidRequestError,
    MalformedResponseError,
    MessageBuildError,
    MinuteQuotaError,
    RateLimitError,
    ResponseQuotaError,
    ResponseTimeoutError,
    ResponseWindowError,
    SendCancelledError,
    SendInterruptedError,
    ServerBusyError,
    StoreError,
    TokenError,
    TokenRefreshTimeoutError,
    TokenStoreError,
    TokenUnavailableError,
    TransportError,
    TypingError,
    UnauthorizedError,
    ValidationError,
    WeChatError,
)
from wechat_kf._retry import RetryPolicy
from wechat_kf._tokens import (
    AccessToken,
    ForceRefreshClaim,
    ForceRefreshLedger,
    LockExtender,
    LockingTokenStore,
    MemoryTokenStore,
    TokenEndpoint,
    TokenManager,
    TokenStore,
)
from wechat_kf._version import __version__
from wechat_kf.bulk import (
    RateLimiter,
    SendControl,
    SendReport,
    SendResult,
    SendStatus,
    SendStream,
    SendSummary,
)

if TYPE_CHECKING:
    from wechat_kf._redis_tokens import RedisTokenStore as RedisTokenStore
from wechat_kf.kf import InviteStatus, KfAccount, KfOnlineAccount, OnlineStatus
from wechat_kf.messages import (
    Article,
    Image,
    MenuItem,
    Message,
    MiniProgramPage,
    MpNews,
    MpNewsArticle,
    MsgMenu,
    Music,
    News,
    RawMessage,
    Text,
    Video,
    Voice,
    WxCard,
)
from wechat_kf.records import OperCode, Record, RecordPage
from wechat_kf.session import AgentSession, KfSession, WaitCase, WaitingSessions

__all__ = [
    "ERRCODE_CLASSES",
    "APIError",
    "AccessToken",
    "AccessTokenError",
    "AgentSession",
    "Article",
    "AsyncWeChat",
    "ConfigurationError",
    "ConnectFailedError",
    "ConnectionLostError",
    "CustomerServiceError",
    "DailyQuotaError",
    "ForceRefreshClaim",
    "ForceRefreshLedger",
    "ForceRefreshLimitedError",
    "HTTPStatusError",
    "Image",
    "InvalidRequestError",
    "InviteStatus",
    "KfAccount",
    "KfOnlineAccount",
    "KfSession",
    "LockExtender",
    "LockingTokenStore",
    "MalformedResponseError",
    "MemoryTokenStore",
    "MenuItem",
    "Message",
    "MessageBuildError",
    "MiniProgramPage",
    "MinuteQuotaError",
    "MpNews",
    "MpNewsArticle",
    "MsgMenu",
    "Music",
    "News",
    "OnlineStatus",
    "OperCode",
    "RateLimitError",
    "RateLimiter",
    "RawMessage",
    "Record",
    "RecordPage",
    "ResponseQuotaError",
    "ResponseTimeoutError",
    "ResponseWindowError",
    "RetryPolicy",
    "SendCancelledError",
    "SendControl",
    "SendInterruptedError",
    "SendReport",
    "SendResult",
    "SendStatus",
    "SendStream",
    "SendSummary",
    "ServerBusyError",
    "StoreError",
    "Text",
    "TokenEndpoint",
    "TokenError",
    "TokenManager",
    "TokenRefreshTimeoutError",
    "TokenStore",
    "TokenStoreError",
    "TokenUnavailableError",
    "TransportError",
    "TypingError",
    "UnauthorizedError",
    "ValidationError",
    "Video",
    "Voice",
    "WaitCase",
    "WaitingSessions",
    "WeChatError",
    "WxCard",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # RedisTokenStore needs the optional ``redis`` extra: import it only when asked for, so that
    # ``import wechat_kf`` works without redis-py. Not in ``__all__`` for the same reason.
    if name == "RedisTokenStore":
        from wechat_kf._redis_tokens import RedisTokenStore

        return RedisTokenStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
