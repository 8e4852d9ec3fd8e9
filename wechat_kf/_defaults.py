"""Named defaults: every timeout, retry delay and margin the SDK uses, in one place."""

from __future__ import annotations

from typing import Final

#: Where WeChat's API lives.
BASE_URL: Final = "https://api.weixin.qq.com"

#: Total seconds for one HTTP exchange (connect, write, read) of an API call.
TIMEOUT: Final = 10.0
#: Seconds to establish a connection.
CONNECT_TIMEOUT: Final = 5.0

#: Retries after the first attempt (so ``2`` means at most 3 attempts).
MAX_RETRIES: Final = 2
#: First backoff delay; doubles each retry up to :data:`RETRY_MAX_DELAY`.
RETRY_INITIAL_DELAY: Final = 0.5
RETRY_MAX_DELAY: Final = 8.0
#: Each delay is multiplied by a random factor in ``[RETRY_JITTER, 1.0]``.
RETRY_JITTER: Final = 0.75
#: The longest ``Retry-After`` honoured; longer answers are not retried.
RETRY_AFTER_MAX: Final = 60.0
#: 45011 (per-minute quota): reads wait for the next minute, at most this long.
MINUTE_QUOTA_MAX_WAIT: Final = 61.0

#: Refresh the access token this many seconds before it expires.
TOKEN_REFRESH_MARGIN: Final = 300.0
#: Seconds to wait for a token fetch (the HTTP exchange with WeChat).
TOKEN_FETCH_TIMEOUT: Final = 10.0
#: Seconds a caller waits for another caller's refresh before giving up.
TOKEN_LOCK_TIMEOUT: Final = 30.0
#: The longest access token accepted from the token endpoint (WeChat asks to reserve 512).
TOKEN_MAX_LENGTH: Final = 2048
#: The longest ``expires_in`` accepted from the token endpoint (WeChat's tokens live 7200 s).
TOKEN_MAX_LIFETIME: Final = 30 * 86400
#: ``stable_token`` ``force_refresh``: documented limits.
FORCE_REFRESH_PER_DAY: Final = 20
FORCE_REFRESH_MIN_INTERVAL: Final = 30.0
#: Shared stores: the refresh lock expires after this many seconds, so a holder that crashed
#: mid-refresh blocks the other processes at most this long. A live holder renews it every
#: third of it while it fetches (stores with ``extend_lock``), so a slow fetch (up to ~31.5 s:
#: three 10 s attempts plus backoff) keeps the lock.
TOKEN_LOCK_TTL: Final = 15.0
#: A refresh ahead of expiry that fails (store down, WeChat busy or unreachable) falls back to the
#: current token while it stays valid for more than this many seconds...
TOKEN_FALLBACK_MIN_VALIDITY: Final = 30.0
#: ...and the next attempt waits this many seconds, so callers do not all hit the failing backend.
#: A failed token fetch is remembered as long: calls meanwhile fail at once with the same error.
TOKEN_REFRESH_BACKOFF: Final = 5.0
#: Shared stores: how often a caller waiting for another process's refresh re-reads the store
#: (first delay, doubling to the maximum, with jitter).
TOKEN_POLL_INITIAL: Final = 0.02
TOKEN_POLL_MAX: Final = 0.25
#: Redis token store: the longest any one Redis operation may take (connect, retries included).
TOKEN_STORE_TIMEOUT: Final = 5.0
#: Redis token store: socket timeouts and retries of the client ``RedisTokenStore.from_url`` makes.
REDIS_SOCKET_TIMEOUT: Final = 2.0
REDIS_RETRIES: Final = 2
#: The jittered back-off between those retries: from ``REDIS_RETRY_BASE`` s, at most ``..._CAP`` s.
REDIS_RETRY_BASE: Final = 0.05
REDIS_RETRY_CAP: Final = 0.5
#: Redis clients ``from_url`` makes: connections per client (a command waits for a free one).
REDIS_MAX_CONNECTIONS: Final = 100
#: Redis token store: default key prefix; keys are ``{prefix}{{appid}}:token`` and so on.
REDIS_KEY_PREFIX: Final = "wechat_kf:"

#: Connection pool for the HTTP client the SDK creates itself. Every connection is kept alive:
#: httpx's default keep-alive limit (20) reconnects on nearly every request above ~100 in flight.
MAX_CONNECTIONS: Final = 100
KEEPALIVE_EXPIRY: Final = 30.0

#: Bulk sends (``send_many``/``stream_many``): requests in flight at once.
BULK_MAX_CONCURRENCY: Final = 16
#: Bulk sends: when the caller is cancelled, requests already in flight get this many seconds to
#: answer (so their outcome is known) before they are abandoned and reported ``unknown``.
BULK_CANCEL_GRACE: Final = 5.0
#: ``stream_many``: results buffered for a slow reader, per worker, before the workers wait.
BULK_STREAM_BUFFER_PER_WORKER: Final = 2

#: Service-window ledger: how long a user stays known after their last window ended (or WeChat
#: said 45015/45047), so that a campaign skips them; after that they are unknown (sent as usual).
WINDOW_MEMORY: Final = 7 * 86400.0
#: Service-window ledger: users :class:`~wechat_kf.MemoryWindowStore` keeps at most.
WINDOW_MAX_ENTRIES: Final = 100_000
#: Redis window store: the longest any one Redis operation may take. Sends wait for it.
WINDOW_STORE_TIMEOUT: Final = 2.0
#: Redis window store: openids read per page by ``reachable()``.
WINDOW_PAGE_SIZE: Final = 500
#: Service-window ledger: a failing store is logged at most once per this many seconds.
WINDOW_STORE_LOG_INTERVAL: Final = 60.0
#: Temporary media (``/cgi-bin/media/upload``): a media_id stops working 3 days after the upload.
MEDIA_LIFETIME: Final = 3 * 86400.0
#: The media-id cache hands out a cached media_id until this many seconds before it expires
#: (a bulk send that outlives it meets 40007 and re-uploads once).
MEDIA_REUSE_MARGIN: Final = 3600.0
#: Media-id stores: the upload lock of a file expires after this many seconds, so a process that
#: died mid-upload delays the other processes' upload of that file at most this long.
MEDIA_LOCK_TTL: Final = 60.0
#: A caller waits at most this many seconds for another process's upload of the same file, then
#: uploads it itself (a duplicate upload is harmless: one more temporary media_id).
MEDIA_LOCK_WAIT: Final = 90.0
#: Waiting for another process's upload: re-read the store after this delay, doubling to the max.
MEDIA_POLL_INITIAL: Final = 0.02
MEDIA_POLL_MAX: Final = 0.5
#: The memory media-id store keeps at most this many files' media_ids.
MEDIA_CACHE_MAX_ENTRIES: Final = 10_000
#: Content hashes remembered per local path (by its size and modification time), so a file sent
#: again is not read and hashed again.
MEDIA_DIGEST_MEMO: Final = 1024
#: How long such a content hash is remembered, in seconds (a day).
MEDIA_DIGEST_TTL: Final = 86400.0
#: Redis media-id store: the longest any one Redis operation may take.
MEDIA_STORE_TIMEOUT: Final = 5.0
#: Downloads streamed to a file: bytes per chunk.
MEDIA_DOWNLOAD_CHUNK: Final = 64 * 1024

USER_AGENT: Final = "wechat_kf"
