"""Customer-service message types: one frozen class per WeChat ``msgtype``.

Each class holds the fields of its ``msgtype`` payload under WeChat's own names and checks the
documented limits when built. The wire envelope
``{"touser": ..., "msgtype": "text", "text": {...}, "customservice": {...}}`` is produced in one
place (:func:`envelope`); unset optional fields are left out, never sent as ``null``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import attrs
from cattrs.gen import make_dict_unstructure_fn, override

from wechat_kf import _validation as check
from wechat_kf._converter import converter
from wechat_kf._errors import ValidationError

__all__ = [
    "Article",
    "Image",
    "MenuItem",
    "Message",
    "MiniProgramPage",
    "MpNews",
    "MpNewsArticle",
    "MsgMenu",
    "Music",
    "News",
    "RawMessage",
    "Text",
    "Video",
    "Voice",
    "WxCard",
    "envelope",
]


T = TypeVar("T")


class Message:
    """Base of every outbound customer-service message. ``msgtype`` is WeChat's type name."""

    __slots__ = ()
    msgtype: ClassVar[str]


def _optional() -> Any:
    return attrs.field(default=None, validator=check.optional_text)


@attrs.frozen(kw_only=True)
class Text(Message):
    """A text message. ``content`` may hold ``<a href data-miniprogram-appid ...>`` links."""

    msgtype: ClassVar[str] = "text"
    content: str = attrs.field(validator=check.required)


@attrs.frozen(kw_only=True)
class Image(Message):
    """An image, by the ``media_id`` of an uploaded temporary or permanent material."""

    msgtype: ClassVar[str] = "image"
    media_id: str = attrs.field(validator=check.required)


@attrs.frozen(kw_only=True)
class Voice(Message):
    """A voice message, by ``media_id``."""

    msgtype: ClassVar[str] = "voice"
    media_id: str = attrs.field(validator=check.required)


@attrs.frozen(kw_only=True)
class Video(Message):
    """A video by ``media_id``; ``thumb_media_id``, title and description optional.

    WeChat's documented payload is ``{media_id, title, description}``; a ``thumb_media_id``
    (the thumbnail's material) is sent only when given.
    """

    msgtype: ClassVar[str] = "video"
    media_id: str = attrs.field(validator=check.required)
    thumb_media_id: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(check.required)
    )
    title: str | None = _optional()
    description: str | None = _optional()


@attrs.frozen(kw_only=True)
class Music(Message):
    """Music: ``musicurl``, ``hqmusicurl`` (played on Wi-Fi) and ``thumb_media_id`` required."""

    msgtype: ClassVar[str] = "music"
    musicurl: str = attrs.field(validator=check.required)
    hqmusicurl: str = attrs.field(validator=check.required)
    thumb_media_id: str = attrs.field(validator=check.required)
    title: str | None = _optional()
    description: str | None = _optional()


@attrs.frozen(kw_only=True)
class Article:
    """One article of a :class:`News` message (a link card)."""

    title: str = attrs.field(validator=check.required)
    description: str | None = _optional()
    url: str | None = _optional()
    picurl: str | None = _optional()


def _items(value: object, cls: type[T], field: str) -> tuple[T, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(field, f"must be a list of {cls.__name__}", value)
    items = tuple(value)
    for item in items:
        if not isinstance(item, cls):
            raise ValidationError(field, f"must hold {cls.__name__} items only", item)
    return items


def _articles(articles: Iterable[Article]) -> tuple[Article, ...]:
    return _items(articles, Article, "News.articles")


@attrs.frozen(kw_only=True, init=False)
class News(Message):
    """A link card. WeChat allows exactly one article (more: errcode 45008)."""

    msgtype: ClassVar[str] = "news"
    articles: tuple[Article, ...] = attrs.field(validator=check.length(1, 1))

    # An explicit __init__ rather than a field converter: type checkers see the same signature
    # (any iterable of articles), without the descriptor they synthesize for converters.
    def __init__(self, *, articles: Iterable[Article]) -> None:
        self.__attrs_init__(articles=_articles(articles))


@attrs.frozen(kw_only=True)
class MpNews(Message):
    """An article from the material library, by ``media_id`` (deprecated by WeChat)."""

    msgtype: ClassVar[str] = "mpnews"
    media_id: str = attrs.field(validator=check.required)


@attrs.frozen(kw_only=True)
class MpNewsArticle(Message):
    """A published article, by the ``article_id`` from the publish API."""

    msgtype: ClassVar[str] = "mpnewsarticle"
    article_id: str = attrs.field(validator=check.required)


@attrs.frozen(kw_only=True)
class MenuItem:
    """One choice of a :class:`MsgMenu`; a click comes back with ``bizmsgmenuid == id``."""

    id: str = attrs.field(validator=check.required)
    content: str = attrs.field(validator=check.required)


def _menu_items(items: Iterable[MenuItem]) -> tuple[MenuItem, ...]:
    return _items(items, MenuItem, "MsgMenu.items")


@attrs.frozen(kw_only=True, init=False)
class MsgMenu(Message):
    """A menu of clickable choices between optional head and tail texts (wire: ``list``)."""

    msgtype: ClassVar[str] = "msgmenu"
    head_content: str | None = _optional()
    items: tuple[MenuItem, ...] = attrs.field(validator=check.length(1, 1000))
    tail_content: str | None = _optional()

    def __init__(
        self,
        *,
        items: Iterable[MenuItem],
        head_content: str | None = None,
        tail_content: str | None = None,
    ) -> None:
        self.__attrs_init__(
            head_content=head_content, items=_menu_items(items), tail_content=tail_content
        )


@attrs.frozen(kw_only=True)
class WxCard(Message):
    """A card coupon, by ``card_id`` (non-custom-code cards only)."""

    msgtype: ClassVar[str] = "wxcard"
    card_id: str = attrs.field(validator=check.required)


@attrs.frozen(kw_only=True)
class MiniProgramPage(Message):
    """A mini-program card (linked mini program; 520×416 thumbnail recommended)."""

    msgtype: ClassVar[str] = "miniprogrampage"
    title: str = attrs.field(validator=check.required)
    appid: str = attrs.field(validator=check.required)
    pagepath: str = attrs.field(validator=check.required)
    thumb_media_id: str = attrs.field(validator=check.required)


@attrs.frozen(kw_only=True)
class RawMessage(Message):
    """Any ``msgtype`` this SDK does not model yet: sent as ``{msgtype: payload}`` verbatim."""

    type: str = attrs.field(validator=check.required)
    payload: Mapping[str, Any] = attrs.field(factory=dict, validator=check.json_payload)

    @property
    def msgtype(self) -> str:  # type: ignore[override]
        """WeChat's type name: :attr:`type`."""
        return self.type


converter.register_unstructure_hook(
    MsgMenu,
    make_dict_unstructure_fn(
        MsgMenu, converter, _cattrs_omit_if_default=True, items=override(rename="list")
    ),
)


def envelope(
    openid: str,
    message: Message,
    *,
    kf_account: str | None = None,
    ai_generated: bool = False,
) -> dict[str, Any]:
    """The JSON object ``POST /cgi-bin/message/custom/send`` expects for ``message``."""
    if not isinstance(message, Message):
        raise TypeError(f"message must be a wechat_kf message, got {type(message).__name__}")
    msgtype = message.msgtype
    payload = (
        dict(message.payload) if isinstance(message, RawMessage) else converter.unstructure(message)
    )
    body: dict[str, Any] = {"touser": openid, "msgtype": msgtype, msgtype: payload}
    if kf_account is not None:
        body["customservice"] = {"kf_account": kf_account}
    if ai_generated:
        body["aimsgcontext"] = {"is_ai_msg": 1}
    return body
