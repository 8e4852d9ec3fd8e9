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
#: ``stable_token`` ``force_refresh``: documented limits.
FORCE_REFRESH_PER_DAY: Final = 20
FORCE_REFRESH_MIN_INTERVAL: Final = 30.0

#: Connection pool for the HTTP client the SDK creates itself.
MAX_CONNECTIONS: Final = 100
MAX_KEEPALIVE_CONNECTIONS: Final = 100
KEEPALIVE_EXPIRY: Final = 30.0

USER_AGENT: Final = "wechat_kf"
