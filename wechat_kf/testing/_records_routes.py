"""The fake's chat-record endpoint: ``POST /customservice/msgrecord/getmsglist``."""

from __future__ import annotations

import bisect
import itertools
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

from wechat_kf.testing._checks import body_of
from wechat_kf.testing._core import RecordedRequest, WeChatFail, route

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat
    from wechat_kf.testing._state import FakeRecord

#: One query spans at most this many seconds.
MAX_SPAN: Final = 86400
#: One page holds at most this many records.
MAX_NUMBER: Final = 10000
_FIELDS: Final = ("starttime", "endtime", "msgid", "number")


def _query(body: dict[str, Any]) -> tuple[int, int, int, int]:
    values = [body.get(name) for name in _FIELDS]
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    if len(ints) != len(_FIELDS):
        raise WeChatFail(65416, "invalid parameter, starttime, endtime, msgid and number required")
    start, end, msgid, number = ints
    if end < start:
        raise WeChatFail(65416, "invalid parameter, endtime is before starttime")
    if end - start > MAX_SPAN:
        raise WeChatFail(65417, "time range exceeds 24 hours")
    if not 1 <= number <= MAX_NUMBER:
        raise WeChatFail(65416, "invalid parameter, number must be between 1 and 10000")
    if msgid < 1:
        raise WeChatFail(65416, "invalid parameter, msgid starts at 1")
    return start, end, msgid, number


@route("POST", "/customservice/msgrecord/getmsglist")
def message_list(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    start, end, msgid, number = _query(body_of(request))
    records = fake.records  # ids only grow as records are added: start at msgid directly
    first = bisect.bisect_left(records, msgid, key=attrgetter("id"))
    matching = (r for r in itertools.islice(records, first, None) if start <= r.time <= end)
    page = list(itertools.islice(matching, number))
    if not page:
        next_msgid = msgid
    elif fake.records_msgid_inclusive:
        next_msgid = page[-1].id
    else:
        next_msgid = page[-1].id + 1
    return {"recordlist": [_wire(r) for r in page], "number": len(page), "msgid": next_msgid}


def _wire(record: FakeRecord) -> dict[str, Any]:
    return {
        "openid": record.openid,
        "opercode": record.opercode,
        "text": record.text,
        "time": record.time,
        "worker": record.worker,
    }
