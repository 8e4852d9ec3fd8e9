"""``RedisStore``: the connection conventions every Redis-backed store of the SDK shares.

Install with ``pip install 'wechat_kf[redis]'`` (redis-py's ``redis.asyncio``; asyncio only).

* The client is yours (``Store(client)``: a ``redis.asyncio.Redis``, what
  ``Sentinel.master_for()`` returns, or a ``RedisCluster``; you close it), or made by
  :meth:`RedisStore.from_url` with short socket timeouts and few retries (closed by ``aclose``
  or ``async with``). One client can serve every store of an application.
* Keys are ``{prefix}{scope}:kind`` (the braces literal): the scope (an appid, an account) is
  the Redis Cluster hash tag, so one scope's keys share a slot and a Lua script touching
  several of them is atomic on one node.
* Every operation is bounded by ``timeout`` seconds, redis-py's retries included, and fails with
  the store's typed error (:attr:`RedisStore.error`, a :class:`~wechat_kf.StoreError`
  subclass) whose ``__cause__`` is redis-py's exception: never a raw redis exception, never an
  unbounded wait, never a secret in the text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, overload

import anyio
import sniffio

from wechat_kf import _defaults
from wechat_kf._errors import StoreError
from wechat_kf._redaction import redact

if TYPE_CHECKING:
    import redis.asyncio as redis_asyncio
    from redis.commands.core import AsyncScript
    from typing_extensions import Self

    RedisClient = redis_asyncio.Redis | redis_asyncio.RedisCluster

__all__ = ["INSTALL_HINT", "RELEASE_LOCK", "RedisStore", "redis_client", "require_redis", "text"]

T = TypeVar("T")

#: What to install for the Redis stores.
INSTALL_HINT: Final = "Redis stores need redis-py: pip install 'wechat_kf[redis]'"

#: Lua, KEYS: a lock, ARGV: a fence: delete the lock only if that fence holds it (1 if it did).
RELEASE_LOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def text(value: object) -> str | None:
    """A Redis reply as ``str`` (``bytes`` decoded; clients with ``decode_responses`` give str)."""
    if value is None:
        return None
    # (The codec name's case is no behaviour.)
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)  # pragma: no mutate


# redis-py is imported when a store is first built, not with the SDK: ``import wechat_kf``
# stays fast, and works (Redis stores included, as names) without the ``redis`` extra.
_redis_errors: tuple[type[Exception], ...] | None = None


def require_redis() -> tuple[type[Exception], ...]:
    """Import redis-py (once); its exception classes. ``ImportError`` saying what to install."""
    global _redis_errors
    if _redis_errors is None:
        try:
            from redis.exceptions import RedisClusterException, RedisError
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        _redis_errors = (RedisError, RedisClusterException)
    return _redis_errors


def redis_client(url: str, **redis_options: Any) -> redis_asyncio.Redis:
    """A ``redis.asyncio.Redis`` for ``url`` with the SDK's defaults: short socket timeouts
    (``REDIS_SOCKET_TIMEOUT``) and few retries with jitter; ``redis_options`` override them.

    Its connection pool is a ``BlockingConnectionPool``: with every connection busy (100 by
    default, ``max_connections``), a command waits for a free one (each store bounds the wait
    by its ``timeout``) instead of failing at once with ``MaxConnectionsError``, as redis-py's
    default pool does under a burst of concurrent operations.
    """
    require_redis()
    import redis.asyncio as redis_asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import EqualJitterBackoff

    backoff = EqualJitterBackoff(cap=_defaults.REDIS_RETRY_CAP, base=_defaults.REDIS_RETRY_BASE)
    options: dict[str, Any] = {
        "socket_timeout": _defaults.REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": _defaults.REDIS_SOCKET_TIMEOUT,
        "retry": Retry(backoff, _defaults.REDIS_RETRIES),
        # (redis-py >= 8 reads a max_connections of None as 100 too: no mutant of it shows.)
        "max_connections": _defaults.REDIS_MAX_CONNECTIONS,  # pragma: no mutate
    }
    pool = redis_asyncio.BlockingConnectionPool.from_url(url, **(options | redis_options))
    client = redis_asyncio.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # aclose() closes the pool it was given too
    return client


class Script:
    """A Lua script of a Redis store class, declared once: ``_claim = Script(SOURCE)``.

    Read on a store, it is that store's client's registered script (redis-py's
    ``register_script``: loaded into Redis on first use, then run by its SHA), registered the
    first time it is read; so a store class declares its scripts and needs no ``__init__``.
    """

    __slots__ = ("_attribute", "source")

    def __init__(self, source: str) -> None:
        #: The Lua source.
        self.source: str = source
        self._attribute = ""  # pragma: no mutate (always set by __set_name__ in a class body)

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = f"_registered{name}"

    @overload
    def __get__(self, store: None, owner: type | None = None) -> Script: ...

    @overload
    def __get__(self, store: RedisStore, owner: type | None = None) -> AsyncScript: ...

    def __get__(self, store: RedisStore | None, owner: type | None = None) -> Script | AsyncScript:
        if store is None:
            return self
        registered: AsyncScript | None = store.__dict__.get(self._attribute)
        if registered is None:
            registered = store.__dict__[self._attribute] = store.redis.register_script(self.source)
        return registered


class RedisStore:
    """Base of the SDK's Redis stores: one client, a key prefix, bounded typed operations.

    Subclasses set :attr:`error` (their :class:`~wechat_kf.StoreError` subclass) and
    :attr:`default_timeout`, declare their Lua scripts as class attributes (:class:`Script`),
    build keys with :meth:`key`, and run every Redis call through :meth:`run`.

    Args:
        redis: A ``redis.asyncio.Redis`` (also what ``Sentinel.master_for()`` returns) or
            ``redis.asyncio.RedisCluster``. Its ``decode_responses`` setting does not matter.
        prefix: Prepended to every key; no ``{`` or ``}`` (the scope is the hash tag).
        timeout: The longest any one operation may take, redis-py's retries included
            (default: the store's :attr:`default_timeout`).
    """

    #: The typed error every failure of this store raises.
    error: ClassVar[type[StoreError]] = StoreError
    #: Seconds any one operation may take when ``timeout`` is not given.
    default_timeout: ClassVar[float] = _defaults.TOKEN_STORE_TIMEOUT

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str = _defaults.REDIS_KEY_PREFIX,
        timeout: float | None = None,
    ) -> None:
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a string without '{{' or '}}', got {prefix!r}")
        timeout = self.default_timeout if timeout is None else timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._redis_errors = require_redis()
        self.redis = redis
        self.prefix = prefix
        self.timeout: float = float(timeout)
        self._owns_client = False  # pragma: no mutate (None is as false)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = _defaults.REDIS_KEY_PREFIX,
        timeout: float | None = None,
        **redis_options: Any,
    ) -> Self:
        """A store on a new client for ``url`` (``redis://``, ``rediss://``, ``unix://``).

        The client has short socket timeouts and few retries; ``redis_options`` override them
        and go to ``redis.asyncio.Redis.from_url``. Close the store (and so the client) with
        ``aclose()`` or ``async with``.
        """
        store = cls(redis_client(url, **redis_options), prefix=prefix, timeout=timeout)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r}, client={type(self.redis).__name__})"

    # ------------------------------------------------------------------ keys and scripts

    def key(self, scope: str, kind: str) -> str:
        """``{prefix}{scope}:kind`` (braces literal): ``scope`` is the Cluster hash tag."""
        if "{" in scope or "}" in scope:
            raise ValueError(f"{scope!r} must not contain '{{' or '}}'")
        return f"{self.prefix}{{{scope}}}:{kind}"

    # ------------------------------------------------------------------ running

    async def run(self, what: str, scope: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis operation, bounded by ``timeout``; every failure is :attr:`error`.

        ``what`` and ``scope`` name the operation in the error text ("Redis lock for wx123
        took longer than 5 s").
        """
        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = "no event loop"
        if library != "asyncio":
            raise self.error(
                f"{type(self).__name__} runs on asyncio only (redis.asyncio), not on {library}"
            )
        try:
            with anyio.fail_after(self.timeout):
                return await call()
        except TimeoutError:
            raise self.error(
                f"Redis {what} for {scope} took longer than {self.timeout:g} s"
            ) from None
        except self._redis_errors as exc:
            detail = redact(str(exc)) or "no detail"
            raise self.error(
                f"Redis {what} for {scope} failed: {type(exc).__name__}: {detail}"
            ) from exc
        except Exception as exc:
            # Anything else out of redis-py (a client bug, a broken connection object) is a
            # store failure too: callers handle one typed error, with the cause chained.
            raise self.error(
                f"Redis {what} for {scope} failed unexpectedly: {type(exc).__name__}"
            ) from exc

    # ------------------------------------------------------------------ life

    async def aclose(self) -> None:
        """Close the Redis client if :meth:`from_url` made it (yours stays open)."""
        if self._owns_client:
            await self.redis.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
