"""``RedisWindowStore``: the service-window ledger on Redis, shared by every process and host.

Install with ``pip install 'wechat_kf[redis]'`` (redis-py's ``redis.asyncio``; asyncio only).

Keys, for appid ``wx123``, user ``o_abc`` and the default prefix ``wechat_kf:``::

    wechat_kf:{wx123}:window:o_abc     hash: the user's record (below), expiring with it
    wechat_kf:{wx123}:windows:ids      sorted set, every score 0: the users, in openid order
    wechat_kf:{wx123}:windows:expiry   sorted set: the users by when their record expires

The record hash holds ``keep`` (Unix seconds until which it is kept; the key's TTL matches),
``checked`` and ``errcode`` (WeChat's last 45015 / 45047), and per window ``w:NAME:at``,
``w:NAME:till``, ``w:NAME:left``, ``w:NAME:ref``. Every change is one Lua script applying the
record operations of :class:`~wechat_kf._window_store.WindowRecord`, so concurrent sends from
any number of processes never spend more messages than a window has. Each write also drops a
few index entries of records that expired (the ``expiry`` set says which), so the indexes stay
as small as the records.

``records()`` (and so ``wx.windows.reachable()``) pages through ``ids`` by openid
(``ZRANGEBYLEX`` with a cursor, ``WINDOW_PAGE_SIZE`` at a time) and reads each page's records
in one pipelined round trip: constant memory, and every user present for the whole iteration is
seen exactly once (an order by openid never moves, unlike an order by expiry).

The ``{appid}`` hash tag keeps one account's keys in one Redis Cluster slot, so every script is
atomic on one node. The connection conventions (your client or ``from_url``, bounded
operations, typed errors) are those of every Redis store of the SDK
(:class:`wechat_kf._redis.RedisStore`); failures raise :class:`~wechat_kf.WindowStoreError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Final

from wechat_kf import _defaults
from wechat_kf._errors import StoreError
from wechat_kf._redis import RedisStore, Script
from wechat_kf._window_store import (
    Spend,
    SpendOutcome,
    StoredWindow,
    WindowRecord,
    WindowStoreError,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from wechat_kf._redis import RedisClient

__all__ = ["RedisWindowStore"]

# Shared by every script: read a record hash into a table, keep its lifetime and the indexes.
# KEYS (every script that writes): record, ids, expiry.
_LIB: Final = """
local function load(key)
  local flat = redis.call('HGETALL', key)
  local rec = {windows = {}, names = {}, flat = flat}
  for i = 1, #flat, 2 do
    local name, attr = string.match(flat[i], '^w:(.+):(%a+)$')
    if name then
      local w = rec.windows[name]
      if not w then
        w = {name = name}
        rec.windows[name] = w
        table.insert(rec.names, name)
      end
      w[attr] = flat[i + 1]
    else
      rec[flat[i]] = flat[i + 1]
    end
  end
  return rec
end

local function dead(rec, now)
  return rec.keep == nil or tonumber(rec.keep) <= now
end

local function fresh(key)
  redis.call('DEL', key)
  return {windows = {}, names = {}, flat = {}}
end

local function keep(rec, openid, memory, now)
  local horizon = 0
  for _, w in pairs(rec.windows) do
    local till = tonumber(w.till)
    if till > horizon then horizon = till end
  end
  if rec.checked and tonumber(rec.checked) > horizon then horizon = tonumber(rec.checked) end
  local until_ = horizon + memory
  if rec.keep and tonumber(rec.keep) > until_ then until_ = tonumber(rec.keep) end
  local text = string.format('%.17g', until_)
  redis.call('HSET', KEYS[1], 'keep', text)
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((until_ - now) * 1000)))
  redis.call('ZADD', KEYS[2], 0, openid)
  redis.call('ZADD', KEYS[3], text, openid)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 16)
  if #gone > 0 then
    redis.call('ZREM', KEYS[3], unpack(gone))
    redis.call('ZREM', KEYS[2], unpack(gone))
  end
end
"""

# ARGV: openid, window, opened_at, until, left, ref, memory
_OPEN: Final = (
    _LIB
    + """
local at = tonumber(ARGV[3])
local rec = load(KEYS[1])
if dead(rec, at) then rec = fresh(KEYS[1]) end
local current = rec.windows[ARGV[2]]
if current then
  local current_at = tonumber(current.at)
  if at < current_at or (at == current_at and current.ref == ARGV[6]) then return 0 end
end
local p = 'w:' .. ARGV[2] .. ':'
redis.call('HSET', KEYS[1], p .. 'at', ARGV[3], p .. 'till', ARGV[4], p .. 'left', ARGV[5],
  p .. 'ref', ARGV[6])
rec.windows[ARGV[2]] = {till = ARGV[4]}
keep(rec, ARGV[1], tonumber(ARGV[7]), at)
return 1
"""
)

# ARGV: openid, now, reserve (1 / 0). Answers {0} unknown, {1, window fields} charged,
# {2, the record's fields} exhausted, {3} forgotten.
_SPEND: Final = (
    _LIB
    + """
local now = tonumber(ARGV[2])
local rec = load(KEYS[1])
if dead(rec, now) then return {0} end
local best = nil
for _, name in ipairs(rec.names) do
  local w = rec.windows[name]
  local till = tonumber(w.till)
  if w.at and till > now and tonumber(w.left) > 0 then
    if best == nil or till < tonumber(best.till)
        or (till == tonumber(best.till) and name < best.name) then
      best = w
    end
  end
end
if best then
  local left = redis.call('HINCRBY', KEYS[1], 'w:' .. best.name .. ':left', -1)
  return {1, best.name, best.at, best.till, tostring(left), best.ref or ''}
end
if ARGV[3] == '1' then
  local out = {2}
  for _, v in ipairs(rec.flat) do table.insert(out, v) end
  return out
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return {3}
"""
)

# KEYS: record. ARGV: window, opened_at
_REFUND: Final = """
local p = 'w:' .. ARGV[1] .. ':'
local at = redis.call('HGET', KEYS[1], p .. 'at')
if not at or tonumber(at) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], p .. 'left', 1)
return 1
"""

# ARGV: openid, errcode, before, now, memory
_CORRECT: Final = (
    _LIB
    + """
local now = tonumber(ARGV[4])
local before = tonumber(ARGV[3])
local rec = load(KEYS[1])
if dead(rec, now) then rec = fresh(KEYS[1]) end
for _, name in ipairs(rec.names) do
  local w = rec.windows[name]
  local p = 'w:' .. name .. ':'
  if w.at and tonumber(w.at) <= before then
    if ARGV[2] == '45015' then
      redis.call('HDEL', KEYS[1], p .. 'at', p .. 'till', p .. 'left', p .. 'ref')
      rec.windows[name] = nil
    else
      redis.call('HSET', KEYS[1], p .. 'left', 0)
    end
  end
end
redis.call('HSET', KEYS[1], 'checked', ARGV[4], 'errcode', ARGV[2])
rec.checked = ARGV[4]
keep(rec, ARGV[1], tonumber(ARGV[5]), now)
return 1
"""
)

# ARGV: openid
_FORGET: Final = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""


def _text(value: object) -> str:
    # pragma below: "UTF-8" is the same codec.
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)  # pragma: no mutate


def parse_record(fields: Mapping[Any, Any], key: str) -> WindowRecord:
    """A record from its hash fields (bytes or str); a malformed one is a typed error."""
    try:
        plain = {_text(k): _text(v) for k, v in fields.items()}
        windows: dict[str, dict[str, str]] = {}
        for field, value in plain.items():
            if field.startswith("w:"):
                name, _, attr = field[2:].rpartition(":")
                windows.setdefault(name, {})[attr] = value
        errcode = plain.get("errcode")
        checked = plain.get("checked")
        return WindowRecord(
            windows=tuple(
                StoredWindow(
                    window=name,
                    opened_at=float(w["at"]),
                    until=float(w["till"]),
                    left=int(w["left"]),
                    ref=w.get("ref", ""),  # pragma: no mutate (the scripts write every ref)
                )
                for name, w in sorted(windows.items())
            ),
            checked_at=None if checked is None else float(checked),
            errcode=None if errcode is None else int(errcode),
            keep_until=float(plain["keep"]),
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise WindowStoreError(
            f"Redis key {key} is malformed: a window record hash (keep, w:NAME:at/till/left/ref) "
            f"was expected ({type(exc).__name__})"
        ) from None


def _page_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"page_size must be an integer >= 1, got {value!r}")
    return value


def _pairs(flat: Sequence[Any]) -> dict[Any, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


class RedisWindowStore(RedisStore):
    """A window store on Redis, shared by every process and host serving one account.

    Every operation is one Lua script (or one read), atomic across processes: concurrent sends
    never spend more messages than a window allows. Records expire with their windows (plus the
    ledger's ``memory``). See the module docstring for the keys.

    Args:
        redis: A ``redis.asyncio.Redis`` (also what ``Sentinel.master_for()`` returns) or
            ``redis.asyncio.RedisCluster``; it can be the one your token store uses.
        prefix: Prepended to every key (no ``{`` or ``}``: the appid is the cluster hash tag).
        timeout: The longest any one operation may take (default ``WINDOW_STORE_TIMEOUT``,
            2 s: sends wait for it); beyond it the operation fails with
            :class:`~wechat_kf.WindowStoreError`, which the ledger logs (the send goes ahead).
        page_size: Users read per round trip by :meth:`records`.

    A client you pass in is yours to close; one made by :meth:`from_url` is closed by
    :meth:`aclose` (or ``async with``).
    """

    error: ClassVar[type[StoreError]] = WindowStoreError
    default_timeout: ClassVar[float] = _defaults.WINDOW_STORE_TIMEOUT
    _open = Script(_OPEN)
    _spend = Script(_SPEND)
    _refund = Script(_REFUND)
    _correct = Script(_CORRECT)
    _forget = Script(_FORGET)

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str = _defaults.REDIS_KEY_PREFIX,
        timeout: float | None = None,
        page_size: int = _defaults.WINDOW_PAGE_SIZE,
    ) -> None:
        super().__init__(redis, prefix=prefix, timeout=timeout)
        #: Users read per round trip by :meth:`records`.
        self.page_size: int = _page_size(page_size)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = _defaults.REDIS_KEY_PREFIX,
        timeout: float | None = None,
        page_size: int = _defaults.WINDOW_PAGE_SIZE,
        **redis_options: Any,
    ) -> Self:
        """A store on a new client for ``url`` (see :meth:`RedisStore.from_url`)."""
        store = super().from_url(url, prefix=prefix, timeout=timeout, **redis_options)
        store.page_size = _page_size(page_size)
        return store

    # ------------------------------------------------------------------ keys

    def record_key(self, appid: str, openid: str) -> str:
        """The Redis key of a user's record (a hash)."""
        return self.key(appid, f"window:{openid}")

    def ids_key(self, appid: str) -> str:
        """The Redis key of ``appid``'s users in openid order (a sorted set, scores 0)."""
        return self.key(appid, "windows:ids")

    def expiry_key(self, appid: str) -> str:
        """The Redis key of ``appid``'s users by record expiry (a sorted set)."""
        return self.key(appid, "windows:expiry")

    def _keys(self, appid: str, openid: str) -> list[str]:
        return [self.record_key(appid, openid), self.ids_key(appid), self.expiry_key(appid)]

    # ------------------------------------------------------------------ WindowStore

    async def get(self, appid: str, openid: str, *, now: float) -> WindowRecord | None:
        """The user's record, or ``None``."""
        key = self.record_key(appid, openid)
        fields = await self.run("window read", appid, lambda: self.redis.hgetall(key))
        if not fields:
            return None
        record = parse_record(fields, key)
        return record if record.keep_until > now else None

    async def open(self, appid: str, openid: str, window: StoredWindow, *, memory: float) -> bool:
        """Store ``window`` unless a later (or the same) opening is stored (one script)."""
        args: list[str | int] = [
            openid,
            window.window,
            repr(window.opened_at),
            repr(window.until),
            window.left,
            window.ref,
            repr(float(memory)),
        ]
        keys = self._keys(appid, openid)
        opened = await self.run("window open", appid, lambda: self._open(keys, args))
        return bool(opened)

    async def spend(self, appid: str, openid: str, *, now: float, reserve: bool) -> Spend:
        """Take one message from the window ending first with messages left (one script)."""
        keys = self._keys(appid, openid)
        args: list[str | int] = [openid, repr(now), int(reserve)]
        answer = await self.run("window spend", appid, lambda: self._spend(keys, args))
        code = int(answer[0])
        if code == 1:
            name, at, till, left, ref = (_text(v) for v in answer[1:])
            window = StoredWindow(
                window=name, opened_at=float(at), until=float(till), left=int(left), ref=ref
            )
            return Spend(outcome=SpendOutcome.CHARGED, window=window)
        if code == 2:
            record = parse_record(_pairs(answer[1:]), keys[0])
            return Spend(outcome=SpendOutcome.EXHAUSTED, record=record)
        if code == 3:
            return Spend(outcome=SpendOutcome.FORGOTTEN)
        return Spend(outcome=SpendOutcome.UNKNOWN)

    async def refund(self, appid: str, openid: str, *, window: str, opened_at: float) -> bool:
        """Give back a reserved message to the same opening of ``window`` (one script)."""
        key = self.record_key(appid, openid)
        args: list[str | int] = [window, repr(opened_at)]
        refunded = await self.run("window refund", appid, lambda: self._refund([key], args))
        return bool(refunded)

    async def correct(
        self, appid: str, openid: str, *, errcode: int, before: float, now: float, memory: float
    ) -> None:
        """Apply WeChat's 45015 / 45047 to the user's record (one script)."""
        keys = self._keys(appid, openid)
        args: list[str | int] = [openid, errcode, repr(before), repr(now), repr(float(memory))]
        await self.run("window correction", appid, lambda: self._correct(keys, args))

    async def forget(self, appid: str, openid: str) -> None:
        """Drop the user's record and its index entries."""
        keys = self._keys(appid, openid)
        await self.run("window forget", appid, lambda: self._forget(keys, [openid]))

    async def records(self, appid: str, *, now: float) -> AsyncIterator[tuple[str, WindowRecord]]:
        """Every live record of ``appid``, a page of ``page_size`` per two round trips."""
        ids = self.ids_key(appid)
        start = b"-"
        while True:
            page = await self.run("window index read", appid, partial(self._page, ids, start))
            if not page:
                return
            openids = [_text(member) for member in page]
            keys = [self.record_key(appid, openid) for openid in openids]
            rows = await self.run("window records read", appid, partial(self._read, keys))
            # strict: a second line of defence (a pipeline answers each of its commands).
            for openid, key, fields in zip(openids, keys, rows, strict=True):  # pragma: no mutate
                if fields:
                    record = parse_record(fields, key)
                    if record.keep_until > now:
                        yield openid, record
            if len(page) < self.page_size:
                return
            start = b"(" + openids[-1].encode("utf-8")  # pragma: no mutate (a codec name's case)

    async def _page(self, ids: str, start: bytes) -> list[Any]:
        return list(await self.redis.zrangebylex(ids, start, b"+", start=0, num=self.page_size))

    async def _read(self, keys: list[str]) -> list[Any]:
        # No MULTI/EXEC: these reads need no atomicity (one would work too: one slot).
        pipe = self.redis.pipeline(transaction=False)  # pragma: no mutate
        for key in keys:
            pipe.hgetall(key)
        return list(await pipe.execute())
