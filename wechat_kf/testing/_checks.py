"""Request checks the customer-service route modules share; each raises WeChat's errcode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wechat_kf.testing._core import RecordedRequest, WeChatFail
from wechat_kf.testing._customer_service import OPENID
from wechat_kf.testing._multipart import FormPart, MultipartError, parse_form_data

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat
    from wechat_kf.testing._state import FakeAgent

__all__ = [
    "body_of",
    "known_agent",
    "media_part",
    "openid_of",
    "optional_text",
    "required_string",
]


def body_of(request: RecordedRequest) -> dict[str, Any]:
    """The JSON object of a POST (``FakeWeChat.handle`` has already checked it is one)."""
    body: dict[str, Any] = request.json()
    return body


def media_part(request: RecordedRequest) -> FormPart:
    """The multipart field ``media`` (with a filename) of an upload; 41005 when there is none."""
    try:
        parts = parse_form_data(request.headers.get("content-type", ""), request.body)
    except MultipartError:
        parts = []
    media = next((p for p in parts if p.name == "media" and p.filename is not None), None)
    if media is None:
        raise WeChatFail(41005, "media data missing")
    return media


def known_agent(fake: FakeWeChat, kf_account: object) -> FakeAgent:
    """The agent named ``kf_account``; 65401 when there is none."""
    agent = fake.agents.get(kf_account) if isinstance(kf_account, str) else None
    if agent is None:
        raise WeChatFail(65401, "invalid kf_account")
    return agent


def openid_of(value: object) -> str:
    """``value`` if it looks like an openid; 40003 otherwise (missing included)."""
    if not isinstance(value, str) or not OPENID.fullmatch(value):
        raise WeChatFail(40003, "invalid openid")
    return value


def required_string(payload: dict[str, Any], key: str, errcode: int, errmsg: str) -> str:
    """``payload[key]`` if it is a non-empty string; ``errcode`` otherwise."""
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise WeChatFail(errcode, errmsg)
    return value


def optional_text(body: dict[str, Any]) -> str:
    """The optional ``text`` of a session call (shown in the chat record); 47001 if not a str."""
    text = body.get("text", "")
    if not isinstance(text, str):
        raise WeChatFail(47001, "data format error, text must be a string")
    return text
