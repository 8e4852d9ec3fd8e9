"""The fake's session endpoints: create, close, get, list per agent, and the waiting queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from wechat_kf.records import OperCode
from wechat_kf.testing._checks import body_of, known_agent, openid_of, optional_text
from wechat_kf.testing._core import RecordedRequest, WeChatFail, route
from wechat_kf.testing._state import FakeWaitCase

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat

#: ``getwaitcase`` lists at most this many users (``count`` still tells the true total).
MAX_WAIT_CASES: Final = 100
_OK: Final = {"errcode": 0, "errmsg": "ok"}


@route("POST", "/customservice/kfsession/create")
def create(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    body = body_of(request)
    agent = known_agent(fake, body.get("kf_account"))
    openid = openid_of(body.get("openid"))
    text = optional_text(body)
    if not (agent.bound and agent.online):
        raise WeChatFail(65415, "kf is not online")
    current = fake.sessions.get(openid)
    if current is None:
        fake._serve(openid, agent.kf_account, OperCode.SESSION_STARTED_BY_AGENT, text)
    elif current.kf_account != agent.kf_account:
        fake._serve(openid, agent.kf_account, OperCode.SESSION_TRANSFERRED, text)
    return _OK


@route("POST", "/customservice/kfsession/close")
def close(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    body = body_of(request)
    agent = known_agent(fake, body.get("kf_account"))
    openid = openid_of(body.get("openid"))
    text = optional_text(body)
    current = fake.sessions.get(openid)
    if current is None:
        raise WeChatFail(65413, "session not exists")
    if current.kf_account != agent.kf_account:
        raise WeChatFail(65414, "user is being served by another kf")
    fake._end_session(openid, text)
    return _OK


@route("GET", "/customservice/kfsession/getsession")
def get_session(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    session = fake.sessions.get(openid_of(request.query.get("openid")))
    if session is None:
        return {"createtime": 0, "kf_account": ""}
    return {"createtime": session.createtime, "kf_account": session.kf_account}


@route("GET", "/customservice/kfsession/getsessionlist")
def session_list(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    agent = known_agent(fake, request.query.get("kf_account"))
    sessions = fake.sessions_of(agent.kf_account)
    return {"sessionlist": [{"createtime": s.createtime, "openid": s.openid} for s in sessions]}


def _wait_case(case: FakeWaitCase, legacy: bool) -> dict[str, Any]:
    if legacy:
        return {"openid": case.openid, "kf_account": case.kf_account, "createtime": case.createtime}
    return {"latest_time": case.latest_time, "openid": case.openid}


@route("GET", "/customservice/kfsession/getwaitcase")
def wait_cases(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    oldest = list(fake.waiting.values())[:MAX_WAIT_CASES]
    return {
        "count": len(fake.waiting),
        "waitcaselist": [_wait_case(case, fake.legacy_waitcase_shape) for case in oldest],
    }
