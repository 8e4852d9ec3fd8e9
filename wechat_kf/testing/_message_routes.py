"""The fake's message endpoints: ``custom/send`` (under the response window) and ``typing``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from wechat_kf.records import OperCode
from wechat_kf.testing._checks import body_of, known_agent, openid_of, required_string
from wechat_kf.testing._core import RecordedRequest, WeChatFail, route
from wechat_kf.testing._state import TYPING_EXCHANGE_WINDOW, FakeUser

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat

#: A text message's ``content`` holds at most this many UTF-8 bytes.
MAX_TEXT_BYTES: Final = 2048
_OK: Final = {"errcode": 0, "errmsg": "ok"}
_WINDOW_ERRORS: Final = {
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
}

PayloadCheck = Callable[[dict[str, Any]], None]


def _media(*keys: str) -> PayloadCheck:
    """The payload must name these media (40007 when one is missing or empty)."""

    def check(payload: dict[str, Any]) -> None:
        for key in keys:
            required_string(payload, key, 40007, f"invalid media_id, {key} missing")

    return check


#: The media a send names, by msgtype (``mpnews`` names a permanent news material, which the
#: fake does not model).
_MEDIA_KEYS: Final = {
    "image": ("media_id",),
    "voice": ("media_id",),
    "video": ("media_id", "thumb_media_id"),
    "music": ("thumb_media_id",),
    "miniprogrampage": ("thumb_media_id",),
}


def _check_media_held(fake: FakeWeChat, msgtype: str, payload: dict[str, Any]) -> None:
    """Every media the payload names is one the fake holds and still live (else 40007)."""
    for key in _MEDIA_KEYS.get(msgtype, ()):
        if key in payload:
            fake.live_media(payload[key])


def _optional_media(*keys: str) -> PayloadCheck:
    """These media may be left out, but when present must be named (40007 when empty)."""

    def check(payload: dict[str, Any]) -> None:
        for key in keys:
            if key in payload:
                required_string(payload, key, 40007, f"invalid media_id, {key} empty")

    return check


def _fields(*keys: str) -> PayloadCheck:
    """The payload must hold these non-empty strings (47001 otherwise)."""

    def check(payload: dict[str, Any]) -> None:
        for key in keys:
            required_string(payload, key, 47001, f"data format error, {key} missing")

    return check


def _all(*checks: PayloadCheck) -> PayloadCheck:
    def check(payload: dict[str, Any]) -> None:
        for each in checks:
            each(payload)

    return check


def _text(payload: dict[str, Any]) -> None:
    content = required_string(payload, "content", 44004, "empty content")
    if len(content.encode()) > MAX_TEXT_BYTES:
        raise WeChatFail(45002, "content size out of limit")


def _news(payload: dict[str, Any]) -> None:
    articles = payload.get("articles")
    if not isinstance(articles, list):
        raise WeChatFail(47001, "data format error, articles must be a list")
    if not articles:
        raise WeChatFail(44003, "empty news data")
    if len(articles) > 1:
        raise WeChatFail(45008, "article size out of limit")
    if not isinstance(articles[0], dict):
        raise WeChatFail(47001, "data format error, an article must be an object")


def _menu(payload: dict[str, Any]) -> None:
    items = payload.get("list")
    if not isinstance(items, list) or not items:
        raise WeChatFail(47001, "data format error, msgmenu list missing")
    for item in items:
        if not isinstance(item, dict) or not item.get("id"):
            raise WeChatFail(47001, "data format error, msgmenu item id missing")
        required_string(item, "content", 47001, "data format error, msgmenu item content missing")


_CHECKS: Final[dict[str, PayloadCheck]] = {
    "text": _text,
    "image": _media("media_id"),
    "voice": _media("media_id"),
    "mpnews": _media("media_id"),
    "video": _all(_media("media_id"), _optional_media("thumb_media_id")),
    "music": _all(_fields("musicurl", "hqmusicurl"), _media("thumb_media_id")),
    "news": _news,
    "mpnewsarticle": _fields("article_id"),
    "msgmenu": _menu,
    "wxcard": _fields("card_id"),
    "miniprogrampage": _all(_fields("title", "appid", "pagepath"), _media("thumb_media_id")),
}


def _payload(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    msgtype = body.get("msgtype")
    check = _CHECKS.get(msgtype) if isinstance(msgtype, str) else None
    payload = body.get(msgtype) if isinstance(msgtype, str) else None
    if check is None or not isinstance(payload, dict):
        raise WeChatFail(40008, "invalid message type")
    check(payload)
    return str(msgtype), payload


def _sender(fake: FakeWeChat, body: dict[str, Any]) -> str:
    """The agent a message is sent as (``customservice.kf_account``), ``""`` for none."""
    if "customservice" not in body:
        return ""
    customservice = body["customservice"]
    if not isinstance(customservice, dict):
        raise WeChatFail(47001, "data format error, customservice must be an object")
    return known_agent(fake, customservice.get("kf_account")).kf_account


def _check_ai_context(body: dict[str, Any]) -> None:
    if "aimsgcontext" not in body:
        return
    context = body["aimsgcontext"]
    flag = context.get("is_ai_msg") if isinstance(context, dict) else None
    if type(flag) is not int or flag not in (0, 1):
        raise WeChatFail(47001, "data format error, aimsgcontext.is_ai_msg must be 0 or 1")


def _open_window(fake: FakeWeChat, openid: str, now: float) -> FakeUser:
    """The user, if an agent may write to them now (45015 outside the window, 45047 used up)."""
    user = fake.users.get(openid)
    if user is None:
        raise WeChatFail(45015, _WINDOW_ERRORS[45015])
    errcode = user.window_error(now)
    if errcode is not None:
        raise WeChatFail(errcode, _WINDOW_ERRORS[errcode])
    return user


@route("POST", "/cgi-bin/message/custom/send")
def send(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    body = body_of(request)
    openid = openid_of(body.get("touser"))
    msgtype, payload = _payload(body)
    _check_media_held(fake, msgtype, payload)
    worker = _sender(fake, body)
    _check_ai_context(body)
    now = fake.clock.now()
    user = _open_window(fake, openid, now)
    user.spend(now)
    user.last_exchange = now
    user.typing_since = None
    user.sent.append(body)
    text = payload["content"] if msgtype == "text" else f"[{msgtype}]"
    fake.add_record(openid, OperCode.AGENT_SENT_MESSAGE, text, worker)
    return _OK


@route("POST", "/cgi-bin/message/custom/typing")
def typing(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    body = body_of(request)
    openid = openid_of(body.get("touser"))
    command = body.get("command")
    if command not in ("Typing", "CancelTyping"):
        raise WeChatFail(45072, "command invalid")
    user = fake.users.get(openid)
    if command == "CancelTyping":
        if user is not None:
            user.typing_since = None
        return _OK
    now = fake.clock.now()
    if user is None or not user.in_window(now):
        raise WeChatFail(45015, _WINDOW_ERRORS[45015])
    if user.last_exchange is None or now - user.last_exchange > TYPING_EXCHANGE_WINDOW:
        raise WeChatFail(45080, "no message exchanged with the user in the last 30 seconds")
    if user.is_typing(now):
        raise WeChatFail(45081, "already typing, can not resend within 15 seconds")
    user.typing_since = now
    return _OK
