"""Named defaults of the callback (receiving) side."""

from __future__ import annotations

from typing import Final

#: Largest body accepted, in bytes. WeChat's pushes are a few KiB; event lists stay far below.
MAX_BODY_SIZE: Final = 256 * 1024
#: Deepest element nesting accepted (WeChat's deepest, ``SendPicsInfo/PicList/item``, is 4).
MAX_XML_DEPTH: Final = 16
#: Most elements one XML document may hold. WeChat's largest pushes (a mass-send report with a
#: result per article, a photo event with 9 pictures) hold well under 100; a hostile body of
#: tens of thousands of elements is refused after this many, in microseconds.
MAX_XML_ELEMENTS: Final = 1024
#: Candidate ``<Encrypt>`` elements tried against ``msg_signature``: a compatibility-mode push
#: may quote ``<Encrypt>`` in a user's text beside the real one; more is not a WeChat push.
MAX_ENCRYPT_CANDIDATES: Final = 4

#: Seconds a push's signed timestamp may lie from this server's clock (replay protection).
#: Pass ``timestamp_window=None`` to turn the check off (tests replaying old recorded pushes).
TIMESTAMP_WINDOW: Final = 300.0

#: Seconds a handled push stays remembered by the duplicate detector, with the reply it got.
#: WeChat retries 3 times, each after a 5 s timeout: all retries land within about 20 s of the
#: first try. At least :data:`TIMESTAMP_WINDOW`, so that a push replayed while its timestamp is
#: still fresh is recognised as a duplicate.
DEDUPE_TTL: Final = 300.0
#: Seconds a push being handled stays claimed. Bounded, so that a crashed worker cannot block a
#: push for longer; above WeChat's ~20 s retry window.
DEDUPE_IN_PROGRESS_TTL: Final = 30.0
#: Entries :class:`~wechat_kf.callback.MemoryDuplicateStore` keeps at most (each holds its
#: push's reply: 7 bytes for ``success``, up to a few KiB for a long encrypted text).
DEDUPE_MAX_ENTRIES: Final = 100_000
#: Prefix of every duplicate-detection key, after the store's own prefix (Redis: ``wechat_kf:``).
DEDUPE_NAMESPACE: Final = "callback:"
#: Seconds any one operation of :class:`~wechat_kf.callback.RedisDuplicateStore` may take.
DUPLICATE_STORE_TIMEOUT: Final = 2.0
#: A retry waiting for a push handled by another worker re-reads the shared store after this
#: many seconds, doubling up to the maximum (a push handled in this process wakes it at once).
DEDUPE_POLL_INITIAL: Final = 0.05
DEDUPE_POLL_MAX: Final = 0.4

#: WeChat waits 5 s for the answer to each try of a push.
WECHAT_ANSWER_TIMEOUT: Final = 5.0
#: Seconds (from its arrival) a retry waits for the try still handling its push, so that it can
#: answer with that try's reply; past this it answers 503 (WeChat tries again). Below
#: :data:`WECHAT_ANSWER_TIMEOUT`, leaving the answer time to travel.
RETRY_WAIT: Final = 4.0

#: Bytes read from a request body at a time by the framework integrations.
READ_CHUNK_SIZE: Final = 64 * 1024

# ------------------------------------------------------------------ answers after the deadline

#: Seconds from a push's arrival after which :class:`~wechat_kf.callback.CallbackEndpoint`
#: (given ``wechat=``) answers ``success`` and delivers the handler's answer later through the
#: API. Below :data:`WECHAT_ANSWER_TIMEOUT`, leaving the answer time to travel.
REPLY_DEADLINE: Final = 4.0
#: Bytes of UTF-8 a text message holds at most: longer text is sent in parts (45002 beyond;
#: see :mod:`wechat_kf.callback._split` for where the figure comes from).
MAX_TEXT_BYTES: Final = 2048
#: Messages the API may send after one user message (48 h), and after a follow, a QR-code
#: scan or a menu click (1 minute): a late answer never sends more (45047 beyond).
MESSAGE_REPLY_BUDGET: Final = 5
EVENT_REPLY_BUDGET: Final = 3
#: "typing..." needs an exchange with the user within this many seconds (45080 otherwise),
#: and lasts this long (re-sent meanwhile: 45081).
TYPING_EXCHANGE_WINDOW: Final = 30.0
TYPING_DURATION: Final = 15.0
#: After a message of a streamed answer went out, "typing..." shows again only when the next
#: part takes longer than this (the end of a stream usually follows its last part at once).
TYPING_AFTER_SEND: Final = 1.0
#: Seconds answers still being delivered get to finish when the application shuts down;
#: those still running then are cut off and reported.
SHUTDOWN_GRACE: Final = 10.0
#: Seconds the calls made for an answer cut off by shutdown (cancelling "typing...") may take.
CUT_OFF_CLEANUP: Final = 3.0
