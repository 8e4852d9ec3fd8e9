"""The fake's agent-account endpoints: list, online list, add, update, delete, invite, avatar."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, Final

from wechat_kf.testing._checks import body_of, known_agent, media_part
from wechat_kf.testing._core import RecordedRequest, WeChatFail, route
from wechat_kf.testing._state import INVITE_LIFETIME, FakeAgent

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat

#: ``prefix@suffix``: a prefix of up to 10 ``[A-Za-z0-9_]``, a suffix of up to 30 characters.
KF_ACCOUNT: Final = re.compile(r"[A-Za-z0-9_]{1,10}@[^@\s]{1,30}")
#: A personal WeChat ID: a letter, then 5 to 19 letters, digits, ``-`` or ``_``.
WECHAT_ID: Final = re.compile(r"[A-Za-z][-_A-Za-z0-9]{5,19}")
MAX_NICKNAME: Final = 16
MAX_AGENTS: Final = 100
MAX_AVATAR_BYTES: Final = 5 * 1024 * 1024
_IMAGE_MAGIC: Final = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}
_OK: Final = {"errcode": 0, "errmsg": "ok"}


def _nickname(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NICKNAME:
        raise WeChatFail(65403, "invalid nickname")
    return value


def _kf_list_entry(agent: FakeAgent, now: float) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kf_account": agent.kf_account,
        "kf_nick": agent.nickname,
        "kf_id": agent.wire_kf_id,
        "kf_headimgurl": agent.headimgurl,
    }
    if agent.kf_wx is not None:
        entry["kf_wx"] = agent.kf_wx
    if agent.invite_wx is not None:
        entry["invite_wx"] = agent.invite_wx
        entry["invite_expire_time"] = agent.invite_expire_time
        entry["invite_status"] = agent.invite_state(now)
    return entry


@route("GET", "/cgi-bin/customservice/getkflist")
def kf_list(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    now = fake.clock.now()
    return {"kf_list": [_kf_list_entry(agent, now) for agent in fake.agents.values()]}


@route("GET", "/cgi-bin/customservice/getonlinekflist")
def online_kf_list(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    online = [
        {
            "kf_account": agent.kf_account,
            "status": agent.status,
            "kf_id": agent.wire_kf_id,
            "accepted_case": len(fake.sessions_of(agent.kf_account)),
            "auto_accept": agent.auto_accept,
        }
        for agent in fake.agents.values()
        if agent.online
    ]
    return {"kf_online_list": online}


@route("POST", "/customservice/kfaccount/add")
def add(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    body = body_of(request)
    kf_account = body.get("kf_account")
    if not isinstance(kf_account, str) or not KF_ACCOUNT.fullmatch(kf_account):
        raise WeChatFail(65404, "invalid kf_account format")
    nickname = _nickname(body.get("nickname"))
    if kf_account in fake.agents:
        raise WeChatFail(65406, "kf_account already exists")
    if len(fake.agents) >= MAX_AGENTS:
        raise WeChatFail(65405, "kf account exceeded")
    fake._new_agent(kf_account, nickname)
    return _OK


@route("POST", "/customservice/kfaccount/update")
def update(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    body = body_of(request)
    agent = known_agent(fake, body.get("kf_account"))
    agent.nickname = _nickname(body.get("nickname"))
    return _OK


@route("POST", "/customservice/kfaccount/del")
def delete(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    agent = known_agent(fake, body_of(request).get("kf_account"))
    for session in fake.sessions_of(agent.kf_account):
        fake._end_session(session.openid)
    del fake.agents[agent.kf_account]
    return _OK


@route("POST", "/customservice/kfaccount/inviteworker")
def invite_worker(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    body = body_of(request)
    agent = known_agent(fake, body.get("kf_account"))
    invite_wx = body.get("invite_wx")
    if not isinstance(invite_wx, str) or not WECHAT_ID.fullmatch(invite_wx):
        raise WeChatFail(65409, "invalid invite_wx")
    now = fake.clock.now()
    if agent.bound:
        raise WeChatFail(65412, "kf_account has been bound to a wechat id")
    if agent.has_pending_invite(now):
        raise WeChatFail(65411, "kf_account already has a pending invitation")
    others = [a for a in fake.agents.values() if a is not agent]
    if any(a.invite_wx == invite_wx and a.has_pending_invite(now) for a in others):
        raise WeChatFail(65408, "invite_wx has already been invited by this account")
    if any(a.kf_wx == invite_wx for a in others):
        raise WeChatFail(65407, "invite_wx is already a kf of this account")
    agent.invite_wx = invite_wx
    agent.invite_status = "waiting"
    agent.invite_expire_time = int(now) + INVITE_LIFETIME
    return _OK


@route("POST", "/customservice/kfaccount/uploadheadimg", json_body=False)
def upload_head_image(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    agent = known_agent(fake, request.query.get("kf_account"))
    media = media_part(request)
    if not media.data or len(media.data) > MAX_AVATAR_BYTES:
        raise WeChatFail(40009, "invalid image size")
    kind = next((k for magic, k in _IMAGE_MAGIC.items() if media.data.startswith(magic)), None)
    if kind is None:
        raise WeChatFail(40005, "invalid file type")
    digest = hashlib.sha1(media.data).hexdigest()
    agent.headimgurl = f"https://mmbiz.qpic.cn/mmbiz_{kind}/{digest}/0"
    return _OK
