"""The fake's token endpoints: ``GET /cgi-bin/token`` and ``POST /cgi-bin/stable_token``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wechat_kf.testing._core import RecordedRequest, WeChatFail, route

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat


def _grant_type(value: object) -> None:
    if value != "client_credential":
        raise WeChatFail(40002, "invalid grant_type")


@route("GET", "/cgi-bin/token", authenticated=False)
def classic_token(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    _grant_type(request.query.get("grant_type"))
    return fake.fetch_classic(request.query.get("appid", ""), request.query.get("secret", ""))


@route("POST", "/cgi-bin/stable_token", authenticated=False, json_body=False)
def stable_token(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        raise WeChatFail(41002, "appid missing (the body must be JSON)")
    try:
        body = request.json()
    except ValueError:
        raise WeChatFail(47001, "data format error") from None
    if not isinstance(body, dict):
        raise WeChatFail(47001, "data format error")
    _grant_type(body.get("grant_type"))
    force = body.get("force_refresh", False)
    if not isinstance(force, bool):
        raise WeChatFail(47001, "force_refresh must be a boolean")
    return fake.fetch_stable(str(body.get("appid", "")), str(body.get("secret", "")), force)
