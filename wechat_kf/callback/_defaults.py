"""Named defaults of the callback (receiving) side."""

from __future__ import annotations

from typing import Final

#: Largest body accepted, in bytes. WeChat's pushes are a few KiB; event lists stay far below.
MAX_BODY_SIZE: Final = 256 * 1024
#: Deepest element nesting accepted (WeChat's deepest, ``SendPicsInfo/PicList/item``, is 4).
MAX_XML_DEPTH: Final = 16

#: Seconds a handled push stays remembered by the duplicate detector. WeChat retries 3 times,
#: each after a 5 s timeout: all retries land within about 20 s of the first try.
DEDUPE_TTL: Final = 300.0
#: Seconds a push being handled stays claimed: retries meanwhile are answered 503. Bounded, so
#: that a crashed worker cannot block a push for longer; above WeChat's ~20 s retry window.
DEDUPE_IN_PROGRESS_TTL: Final = 30.0
#: Entries :class:`~wechat_kf.callback.MemoryDuplicateStore` keeps at most.
DEDUPE_MAX_ENTRIES: Final = 100_000
#: Prefix of every duplicate-detection key, after the store's own prefix (Redis: ``wechat_kf:``).
DEDUPE_NAMESPACE: Final = "callback:"
#: Seconds any one operation of :class:`~wechat_kf.callback.RedisDuplicateStore` may take.
DUPLICATE_STORE_TIMEOUT: Final = 2.0

#: Bytes read from a request body at a time by the framework integrations.
READ_CHUNK_SIZE: Final = 64 * 1024
