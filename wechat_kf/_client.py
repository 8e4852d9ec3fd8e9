"""The :class:`AsyncWeChat` facade: owns the HTTP client, the token manager and the pipeline."""

from __future__ import annotations

import contextlib
import functools
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs
import httpx

from wechat_kf import _defaults
from wechat_kf._loops import LoopGuard
from wechat_kf._media_ids import MediaIdCache, MediaIdStore
from wechat_kf._pipeline import Endpoint, Pipeline
from wechat_kf._redaction import install_log_redaction
from wechat_kf._retry import RetryMode, RetryPolicy, Sleep
from wechat_kf._tokens import (
    AccessToken,
    MemoryTokenStore,
    TokenEndpoint,
    TokenManager,
    TokenStore,
    token_from_payload,
)
from wechat_kf._transport import (
    TRANSPORTS,
    PoolSizer,
    SDKHTTPClient,
    TransportName,
    make_transport,
)
from wechat_kf._window_ledger import WallClock, WindowLedger
from wechat_kf._window_store import MemoryWindowStore, WindowStore

if TYPE_CHECKING:
    from typing_extensions import Self

    from wechat_kf.kf import KfAPI
    from wechat_kf.media import MediaAPI
    from wechat_kf.message import MessageAPI
    from wechat_kf.records import RecordsAPI
    from wechat_kf.session import SessionAPI
    from wechat_kf.windows import WindowsAPI

__all__ = ["AsyncWeChat"]

_STABLE_TOKEN: Final = Endpoint(
    "POST", "/cgi-bin/stable_token", RetryMode.TOKEN, authenticated=False
)
#: force_refresh invalidates the token for every caller and spends 1 of 20 a day: not idempotent.
_FORCE_STABLE_TOKEN: Final = Endpoint(
    "POST", "/cgi-bin/stable_token", RetryMode.WRITE, authenticated=False
)
_CLASSIC_TOKEN: Final = Endpoint("GET", "/cgi-bin/token", RetryMode.TOKEN, authenticated=False)


class _NotGiven:
    """The type of :data:`NOT_GIVEN`: an argument left out (where ``None`` means something)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = _NotGiven()


class _TokenFetcher:
    """Calls the token endpoint; holds the secret (never shown in a repr)."""

    __slots__ = ("_appid", "_endpoint", "_pipeline", "_secret")

    def __init__(self, appid: str, secret: str, endpoint: TokenEndpoint, pipeline: Pipeline):
        self._appid = appid
        self._secret = secret
        self._endpoint = endpoint
        self._pipeline = pipeline

    def __repr__(self) -> str:
        return f"_TokenFetcher(appid={self._appid!r})"

    async def __call__(self, force_refresh: bool) -> AccessToken:
        now = time.time()
        if self._endpoint is TokenEndpoint.STABLE:
            body: dict[str, Any] = {
                "grant_type": "client_credential",
                "appid": self._appid,
                "secret": self._secret,
            }
            if force_refresh:
                body["force_refresh"] = True
            endpoint = _FORCE_STABLE_TOKEN if force_refresh else _STABLE_TOKEN
            payload = await self._pipeline.call(endpoint, json=body)
        else:
            payload = await self._pipeline.call(
                _CLASSIC_TOKEN,
                query={
                    "grant_type": "client_credential",
                    "appid": self._appid,
                    "secret": self._secret,
                },
            )
        return token_from_payload(payload, now)


def _timeout(value: float | httpx.Timeout | None) -> httpx.Timeout:
    if isinstance(value, httpx.Timeout):
        return value
    if value is None:  # as in httpx: no timeout at all
        return httpx.Timeout(None)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, got {value!r}")
    return httpx.Timeout(value, connect=min(value, _defaults.CONNECT_TIMEOUT))


def _retry_policy(
    retry: RetryPolicy | None, max_retries: int | None, *, base: RetryPolicy | None = None
) -> RetryPolicy:
    """The policy ``retry=`` and ``max_retries=`` describe together (on top of ``base``)."""
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ValueError(f"retry must be a wechat_kf.RetryPolicy, got {type(retry).__name__}")
    if retry is not None and max_retries is not None and max_retries != retry.max_retries:
        raise ValueError(
            f"max_retries={max_retries!r} contradicts retry=RetryPolicy(max_retries="
            f"{retry.max_retries!r}): give the count in one place (RetryPolicy(max_retries=...))"
        )
    policy = retry or base or RetryPolicy()
    if max_retries is not None and max_retries != policy.max_retries:
        policy = attrs.evolve(policy, max_retries=max_retries)  # validated by RetryPolicy
    return policy


class AsyncWeChat:
    """The client: one per appid, shared by your whole application.

    ``kf``, ``message``, ``session``, ``records`` and ``media`` are the API areas; ``windows`` is
    the service-window ledger. They share one ``httpx.AsyncClient``, one token manager, one
    media-id cache and one ledger. Use ``async with`` (or ``await aclose()``) to close the HTTP
    client the SDK created; a client you pass in is used as is and never closed.

    A client belongs to the event loop of its first call (its connections and locks live there):
    used from another loop it raises :class:`EventLoopChangedError`, used after ``aclose()``
    :class:`ClientClosedError`, both before anything is sent. Create one client per event loop,
    inside it, and close it there.

    Args:
        appid: The official account's AppID.
        secret: Its AppSecret. Never shown in any repr, log line or exception. ``None`` selects
            read-only token mode: the SDK never calls the token endpoint and only reads
            ``token_store`` (which your token service fills); it raises
            :class:`TokenUnavailableError` when the store holds no usable token.
        token_store: Where access tokens live (default: a :class:`MemoryTokenStore`). Share a
            :class:`RedisTokenStore` between processes so that exactly one of them refreshes.
        http_client: Your own ``httpx.AsyncClient`` (its base URL is ignored: use ``base_url``).
        base_url: WeChat's API root; point it at a proxy or the fake server in tests.
        timeout: Seconds (or an ``httpx.Timeout``) per HTTP exchange. Defaults to 10 s for our
            own HTTP client and to the client's own timeout for one you pass in.
        max_retries: Retries after the first attempt for retryable failures (default 2).
        retry: The whole :class:`RetryPolicy` (backoff, ``Retry-After`` cap, minute-quota
            wait), e.g. ``retry=RetryPolicy(max_retries=5, initial_delay=1.0)``. Give
            ``max_retries`` in it or beside it, not two different values.
        token_endpoint: ``"stable"`` (default, ``/cgi-bin/stable_token``) or ``"classic"``.
        refresh_margin: Refresh the token this many seconds before it expires.
        token_lock_timeout: Longest wait for another caller's token refresh.
        token_lock_ttl: With a shared store, the refresh lock expires after this many seconds,
            so a process that died mid-refresh blocks the others at most this long.
        token_fetch_timeout: Timeout of the token endpoint call itself.
        sleep: The async sleep used between retries (tests inject a recorder).
        transport: How the HTTP client the SDK creates sends (it is an ``httpx.AsyncClient``
            whichever): ``"auto"`` (default: ``"aiohttp"`` when the ``aiohttp`` extra is
            installed and the code runs on asyncio, else ``"anyio"``), ``"anyio"`` (the SDK's
            own connection pool, asyncio and trio), ``"aiohttp"`` (aiohttp's connector, ``pip
            install "wechat_kf[aiohttp]"``; on trio the SDK sends with ``"anyio"``) or
            ``"httpx"`` (the same as ``"anyio"``; httpx's own pool, which slows down with more
            than ~16 requests in flight, is what your own ``http_client=httpx.AsyncClient()``
            sends with).
        max_connections: Connections the SDK's pool may open (default 100); every one is kept
            alive. :meth:`MessageAPI.send_many` grows the pool to its ``max_concurrency``.
        media_store: Where the media_ids of uploaded local files are kept (default: a
            :class:`MemoryMediaIdStore`). Share a ``RedisMediaIdStore`` between processes so
            that a file sent by all of them (``Image(file=...)``) is uploaded once.
        window_store: Where the service-window ledger (``wx.windows``) keeps users' windows
            (default: a :class:`MemoryWindowStore`, this process only). Share a
            :class:`RedisWindowStore` between processes so that they all know every window.
        window_clock: The Unix time the ledger reads (default ``time.time``; tests pass the
            fake WeChat's clock).

    Raises:
        ValueError: contradictory or invalid configuration (e.g. ``transport`` or
            ``max_connections`` together with your own ``http_client``, or ``max_retries``
            other than ``retry.max_retries``).
        ImportError: ``transport="aiohttp"`` without the ``aiohttp`` extra installed.
    """

    def __init__(
        self,
        appid: str,
        secret: str | None = None,
        *,
        token_store: TokenStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        base_url: str = _defaults.BASE_URL,
        timeout: float | httpx.Timeout | _NotGiven | None = NOT_GIVEN,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        token_endpoint: TokenEndpoint | str = TokenEndpoint.STABLE,
        refresh_margin: float = _defaults.TOKEN_REFRESH_MARGIN,
        token_lock_timeout: float = _defaults.TOKEN_LOCK_TIMEOUT,
        token_lock_ttl: float = _defaults.TOKEN_LOCK_TTL,
        token_fetch_timeout: float = _defaults.TOKEN_FETCH_TIMEOUT,
        sleep: Sleep | None = None,
        transport: TransportName | None = None,
        max_connections: int | None = None,
        media_store: MediaIdStore | None = None,
        window_store: WindowStore | None = None,
        window_clock: WallClock | None = None,
    ) -> None:
        if not isinstance(appid, str) or not appid:
            raise ValueError("appid must be a non-empty string")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ValueError("secret must be a non-empty string (or None for read-only tokens)")
        if secret is None and token_store is None:
            raise ValueError(
                "secret=None (read-only token mode) needs the token_store your token service fills"
            )
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"base_url must start with https:// or http://, got {base_url!r}")
        if (
            refresh_margin < 0
            or token_lock_timeout <= 0
            or token_lock_ttl <= 0
            or token_fetch_timeout <= 0
        ):
            raise ValueError("refresh_margin must be >= 0 and the token timeouts > 0")
        if http_client is not None and (transport is not None or max_connections is not None):
            raise ValueError(
                "transport and max_connections configure the HTTP client the SDK creates; "
                "configure your own http_client's transport and limits yourself"
            )
        if transport is not None and transport not in TRANSPORTS:
            raise ValueError(
                f"transport must be 'auto', 'anyio', 'aiohttp' or 'httpx', got {transport!r}"
            )
        if max_connections is not None and (
            not isinstance(max_connections, int)
            or isinstance(max_connections, bool)
            or max_connections < 1
        ):
            raise ValueError(f"max_connections must be an integer >= 1, got {max_connections!r}")
        try:
            endpoint = TokenEndpoint(token_endpoint)
        except ValueError:
            raise ValueError(
                f"token_endpoint must be 'stable' or 'classic', got {token_endpoint!r}"
            ) from None
        policy = _retry_policy(retry, max_retries)
        install_log_redaction()
        self.appid = appid
        self._owns_http = http_client is None
        pool: PoolSizer | None = None
        if http_client is None:
            sdk_transport, pool = make_transport(
                transport or "auto",
                max_connections=max_connections or _defaults.MAX_CONNECTIONS,
                keepalive_expiry=_defaults.KEEPALIVE_EXPIRY,
            )
            http_client = SDKHTTPClient(
                timeout=_defaults.TIMEOUT,
                transport=sdk_transport,
                headers={"User-Agent": _defaults.USER_AGENT},
            )
            if isinstance(timeout, _NotGiven):
                timeout = _defaults.TIMEOUT
        self._http = http_client
        sleep = sleep or anyio.sleep
        self._guard = guard = LoopGuard(
            http_client.release_closed_loop if isinstance(http_client, SDKHTTPClient) else None
        )
        token_pipeline = Pipeline(
            http=http_client,
            base_url=base_url,
            tokens=None,
            retry=policy,
            timeout=_timeout(token_fetch_timeout),
            sleep=sleep,
            pool=pool,
            guard=guard,
        )
        self._tokens = TokenManager(
            appid=appid,
            store=token_store if token_store is not None else MemoryTokenStore(),
            fetch=None
            if secret is None
            else _TokenFetcher(appid, secret, endpoint, token_pipeline),
            endpoint=endpoint,
            refresh_margin=refresh_margin,
            lock_timeout=token_lock_timeout,
            lock_ttl=token_lock_ttl,
        )
        self._pipeline = Pipeline(
            http=http_client,
            base_url=base_url,
            tokens=self._tokens,
            retry=policy,
            timeout=None if isinstance(timeout, _NotGiven) else _timeout(timeout),
            sleep=sleep,
            pool=pool,
            guard=guard,
        )
        self._media_cache = MediaIdCache(media_store)
        self._windows = WindowLedger(
            appid=appid,
            store=window_store if window_store is not None else MemoryWindowStore(),
            clock=window_clock or time.time,
        )

    # ------------------------------------------------------------------ areas

    @functools.cached_property
    def kf(self) -> KfAPI:
        """Agent accounts: list, add, update, delete, invite, avatar."""
        from wechat_kf.kf import KfAPI

        return KfAPI(self._pipeline)

    @functools.cached_property
    def message(self) -> MessageAPI:
        """Customer-service messages: send one, send many, typing state."""
        from wechat_kf.message import MessageAPI

        return MessageAPI(self._pipeline, self._windows, media=self.media)

    @functools.cached_property
    def media(self) -> MediaAPI:
        """Temporary media: upload, download, and the uploads behind ``Image(file=...)``."""
        from wechat_kf.media import MediaAPI

        return MediaAPI(self._pipeline, cache=self._media_cache, appid=self.appid)

    @functools.cached_property
    def session(self) -> SessionAPI:
        """Session control: create, close, get, list, waiting queue."""
        from wechat_kf.session import SessionAPI

        return SessionAPI(self._pipeline)

    @functools.cached_property
    def records(self) -> RecordsAPI:
        """Chat records: one page, or every record of any time range."""
        from wechat_kf.records import RecordsAPI

        return RecordsAPI(self._pipeline)

    @functools.cached_property
    def windows(self) -> WindowsAPI:
        """Service windows: who can be messaged now, how many times, until when."""
        from wechat_kf.windows import WindowsAPI

        return WindowsAPI(self._windows)

    # ------------------------------------------------------------------ options, tokens, life

    @property
    def tokens(self) -> TokenManager:
        """The token manager shared by this client and every ``with_options`` copy."""
        return self._tokens

    async def access_token(self) -> str:
        """A fresh access token, for calling WeChat APIs this SDK does not cover.

        Raises :class:`TokenError` (:class:`TokenFetchError` for a failing token endpoint) or
        :class:`ConfigurationError` (wrong appid, secret or IP) when there is none to be had.
        """
        return await self._tokens.get()

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> Self:
        """A facade with other timeout/retry settings sharing this HTTP client, tokens and
        service-window ledger.

        ``retry`` replaces the whole :class:`RetryPolicy`, ``max_retries`` only its count
        (both: they must agree). Closing the copy does nothing: the original owns the HTTP
        client.

        Raises:
            ValueError: an invalid setting, or ``max_retries`` other than ``retry.max_retries``.
        """
        clone = object.__new__(type(self))
        clone.__dict__.update(
            {
                key: value
                for key, value in self.__dict__.items()
                if key not in ("kf", "message", "session", "records", "media", "windows")
            }
        )
        clone._owns_http = False
        policy = _retry_policy(retry, max_retries, base=self._pipeline.retry)
        clone._pipeline = self._pipeline.derive(
            retry=policy, timeout=None if timeout is None else _timeout(timeout)
        )
        return clone

    async def aclose(self) -> None:
        """Close the HTTP client if the SDK created it.

        From another event loop than the one the client was used in (its first loop ended with
        the client open), the connections of that loop cannot be closed from here: they are
        dropped, and the client is closed all the same.
        """
        if not self._owns_http:
            return
        if self._guard.matches():
            await self._http.aclose()
            return
        with contextlib.suppress(Exception):  # the client is marked closed before this fails
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncWeChat(appid={self.appid!r})"
