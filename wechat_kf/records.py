"""``wx.records``: chat records (聊天记录), one page or a whole time range streamed.

WeChat answers at most 10,000 records per call, for a window of at most 24 hours
(``starttime <= time <= endtime``, whole seconds). :meth:`RecordsAPI.iter` covers any range:
it tiles the range with windows of at most 24 h (no gap, no overlap), pages through each window
by ``msgid``, drops a boundary record repeated across pages, and streams: memory stays flat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any, Final

import attrs
from cattrs.gen import make_dict_unstructure_fn, override

from wechat_kf import _validation as check
from wechat_kf._converter import converter, lenient_str, strict_int
from wechat_kf._enums import OpenIntEnum
from wechat_kf._errors import ValidationError
from wechat_kf._pipeline import Endpoint
from wechat_kf._resource import APIResource

__all__ = ["OperCode", "Record", "RecordPage", "RecordsAPI"]

#: The longest window one ``getmsglist`` call may span (65417 beyond).
WINDOW_SECONDS: Final = 24 * 60 * 60
#: The most records one call may ask for.
MAX_NUMBER: Final = 10_000

_GET_MSG_LIST: Final = Endpoint("POST", "/customservice/msgrecord/getmsglist")

Timestamp = datetime | int


class OperCode(OpenIntEnum):
    """What a record is about. Unknown codes survive as ``OperCode.UNKNOWN_<code>``."""

    SESSION_CREATED_UNACCEPTED = 1000
    SESSION_ACCEPTED = 1001
    SESSION_STARTED_BY_AGENT = 1002
    SESSION_TRANSFERRED = 1003
    SESSION_CLOSED = 1004
    SESSION_GRABBED = 1005
    ACCOUNT_RECEIVED_MESSAGE = 2001
    AGENT_SENT_MESSAGE = 2002
    AGENT_RECEIVED_MESSAGE = 2003


@attrs.frozen(kw_only=True)
class Record:
    """One chat record (wire field names). Media show as ``[image]``, ``[voice]``, ``[video]``."""

    openid: str
    opercode: OperCode
    text: str = ""
    time: datetime
    #: The agent account involved (``""`` when none).
    worker: str = ""


@attrs.frozen(kw_only=True)
class RecordPage:
    """One ``getmsglist`` answer: the records, their ``number``, and the ``msgid`` to go on from."""

    records: list[Record] = attrs.Factory(list)
    number: int = 0
    msgid: int = 0

    @property
    def recordlist(self) -> list[Record]:
        """The records, under WeChat's field name."""
        return self.records


#: Every known opercode, by value and by its string form (WeChat sends either).
_OPERCODES: Final[dict[object, OperCode]] = {
    **{code.value: code for code in OperCode},
    **{str(code.value): code for code in OperCode},
}
_UTC: Final = timezone.utc


def _structure_record(value: Any, _: object = None) -> Record:
    """One wire record to a :class:`Record`, built directly (a page holds up to 10,000).

    The same tolerance as the converter's generic hooks (ids and times as int or numeric
    string, unknown opercodes kept, ``text``/``worker`` optional, extra keys ignored), at a
    fraction of the cost: ``records.iter`` spends most of its time here.
    """
    if not isinstance(value, dict):
        raise TypeError(f"a record must be an object, got {type(value).__name__}")
    try:
        openid, opercode, when = value["openid"], value["opercode"], value["time"]
    except KeyError as exc:
        raise KeyError(f"record without {exc.args[0]!r}") from None
    field = "opercode"
    try:
        code = _OPERCODES.get(opercode) if type(opercode) in (int, str) else None
        if code is None:
            code = OperCode(strict_int(opercode))
        field = "time"
        seconds = when if type(when) is int else strict_int(when)
        moment = datetime.fromtimestamp(seconds, tz=_UTC)
        field = "openid"
        if type(openid) is not str:
            openid = lenient_str(openid)
        field = "text"
        text = value.get("text", "")
        if type(text) is not str:
            text = lenient_str(text)
        field = "worker"
        worker = value.get("worker", "")
        if type(worker) is not str:
            worker = lenient_str(worker)
    except (TypeError, ValueError, OverflowError, OSError) as exc:  # OSError: time range
        raise ValueError(f"{field}: {exc}") from None
    return Record(openid=openid, opercode=code, text=text, time=moment, worker=worker)


def _structure_page(value: Any, _: object = None) -> RecordPage:
    """A ``getmsglist`` answer to a :class:`RecordPage` (missing fields: their defaults)."""
    if not isinstance(value, dict):
        raise TypeError(f"the answer must be an object, got {type(value).__name__}")
    wire = value.get("recordlist", [])
    if not isinstance(wire, list):
        raise TypeError(f"recordlist must be a list, got {type(wire).__name__}")
    records = []
    index = 0  # pragma: no mutate (enumerate sets it before anything can fail)
    try:
        for index, item in enumerate(wire):  # noqa: B007  (named in the error)
            records.append(_structure_record(item))
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"recordlist[{index}]: {exc}") from exc
    number, msgid = value.get("number", 0), value.get("msgid", 0)
    return RecordPage(
        records=records,
        number=number if type(number) is int else strict_int(number),
        msgid=msgid if type(msgid) is int else strict_int(msgid),
    )


converter.register_structure_hook(Record, _structure_record)
converter.register_structure_hook(RecordPage, _structure_page)
converter.register_unstructure_hook(
    RecordPage,
    make_dict_unstructure_fn(RecordPage, converter, records=override(rename="recordlist")),
)


class RecordsAPI(APIResource):
    """Chat records of every agent."""

    __slots__ = ()

    async def page(
        self, start: Timestamp, end: Timestamp, *, msgid: int = 1, number: int = MAX_NUMBER
    ) -> RecordPage:
        """One page of records with ``start <= time <= end`` (a window of at most 24 h).

        ``start``/``end`` are aware datetimes or int unix seconds. Pass the returned ``msgid``
        to get the next page. For ranges of any length, use :meth:`iter`.
        """
        starttime, endtime = _window(start, end)
        if endtime - starttime > WINDOW_SECONDS:
            raise ValidationError(
                "end", f"must be at most 24 hours ({WINDOW_SECONDS} s) after start; use iter()"
            )
        return await self._page(starttime, endtime, msgid, number)

    async def _page(self, starttime: int, endtime: int, msgid: int, number: int) -> RecordPage:
        body = {
            "starttime": starttime,
            "endtime": endtime,
            "msgid": check.int_range(msgid, "msgid", 1, 2**63 - 1),
            "number": check.int_range(number, "number", 1, MAX_NUMBER),
        }
        return await self._pipeline.call(_GET_MSG_LIST, json=body, into=RecordPage)

    async def iter(
        self, start: Timestamp, end: Timestamp, *, number: int = MAX_NUMBER
    ) -> AsyncIterator[Record]:
        """Every record with ``start <= time <= end``, oldest window first, for any range length.

        ``number`` is the page size (1-10,000). Records stream page by page.
        """
        starttime, endtime = _window(start, end)
        check.int_range(number, "number", 1, MAX_NUMBER)
        paging = _Paging()
        window_start = starttime
        while window_start <= endtime:
            window_end = min(window_start + WINDOW_SECONDS - 1, endtime)
            async for record in self._iter_window(window_start, window_end, number, paging):
                yield record
            window_start = window_end + 1

    async def _iter_window(
        self, starttime: int, endtime: int, number: int, paging: _Paging
    ) -> AsyncIterator[Record]:
        msgid = 1
        last: Record | None = None  # pragma: no mutate (set before it is compared)
        repeat_expected = False
        while True:
            page = await self._page(starttime, endtime, msgid, number)
            records = page.records
            if repeat_expected and records and paging.repeats_boundary:
                if records[0] == last:
                    records = records[1:]  # the boundary record, repeated from the last page
                else:  # this server starts after the returned msgid: never drop a record
                    paging.repeats_boundary = False
            for record in records:
                yield record
            if not page.records or len(page.records) < number:
                return
            last = page.records[-1]
            # The returned msgid is where the next page starts (WeChat repeats the record at
            # it). An msgid that did not move would page forever: step past it, no repeat then.
            repeat_expected = page.msgid > msgid
            msgid = page.msgid if repeat_expected else msgid + 1


class _Paging:
    """What one ``iter()`` learns about the server's paging, across its windows."""

    __slots__ = ("repeats_boundary",)

    def __init__(self) -> None:
        #: WeChat starts the next page at the returned msgid, repeating the boundary record.
        #: A first record that differs from the previous last one proves this server does not.
        self.repeats_boundary = True


def _window(start: Timestamp, end: Timestamp) -> tuple[int, int]:
    starttime = check.unix_seconds(start, "start")
    endtime = check.unix_seconds(end, "end")
    if endtime < starttime:
        raise ValidationError("end", "must not be before start", end)
    return starttime, endtime
