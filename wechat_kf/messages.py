"""Customer-service message types: one frozen class per WeChat ``msgtype``.

Each class holds the fields of its ``msgtype`` payload under WeChat's own names and checks the
documented limits when built. The wire envelope
``{"touser": ..., "msgtype": "text", "text": {...}, "customservice": {...}}`` is produced in one
place (:func:`envelope`); unset optional fields are left out, never sent as ``null``.

A message whose payload names media by ``media_id`` can name a local file instead:
``Image(file="shop.jpg")``, ``Voice(file=...)``, ``Video(file=..., thumb_file=...)``,
``Music(thumb_file=...)``, ``MiniProgramPage(thumb_file=...)``. The file (its bytes, a path or a
binary file object) is checked against WeChat's limits for its media type when the message is
built (:class:`~wechat_kf.MediaFile`); ``wx.message.send`` and the bulk sends upload it once
(cached by content, see ``wx.media``) and send the ``media_id``. The classes list those fields in
:attr:`Message.media_fields`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import attrs
from cattrs.gen import make_dict_unstructure_fn, override

from wechat_kf import _validation as check
from wechat_kf._converter import converter
from wechat_kf._errors import ValidationError
from wechat_kf._files import FileSource, MediaFile, MediaType

__all__ = [
    "Article",
    "Image",
    "LocalSource",
    "MediaField",
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


#: What a message's local-file field takes: the file's bytes, a path, a binary file object, or a
#: :class:`~wechat_kf.MediaFile` (``None``: no file).
LocalSource = FileSource | MediaFile | None


@attrs.frozen
class MediaField:
    """A message field holding a local file (``file``) to upload, and the ``media_id`` field its
    upload fills (``target``), as a media of ``type``; ``required``: one of the two must be set.
    """

    file: str
    target: str
    type: MediaType
    required: bool = True


class Message:
    """Base of every outbound customer-service message. ``msgtype`` is WeChat's type name."""

    __slots__ = ()
    msgtype: ClassVar[str]
    #: The fields that may hold a local file to upload when the message is sent.
    media_fields: ClassVar[tuple[MediaField, ...]] = ()

    @property
    def has_local_files(self) -> bool:
        """Whether the message holds a local file still to upload (its media_id is unset)."""
        return any(getattr(self, field.file) is not None for field in self.media_fields)


def _optional() -> Any:
    return attrs.field(default=None, validator=check.optional_text)


def _media_id(*, required: bool, file: str) -> Any:
    """A ``media_id`` field that a local file in field ``file`` may stand in for.

    ``required``: one of the two must be given (never both).
    """

    def validate(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        label = f"{type(instance).__name__}.{attribute.name}"
        local = getattr(instance, file)
        if value is not None:
            check.non_empty(value, label)
            if local is not None:
                raise ValidationError(label, f"give {attribute.name} or {file}, not both", value)
        elif required and local is None:
            raise ValidationError(
                label, f"give {attribute.name} or {file} (a local file to upload)", value
            )

    return attrs.field(default=None, validator=validate)


def _local(value: LocalSource, kind: MediaType, label: str) -> MediaFile | None:
    """A local-file field's value: the file checked at once (see :meth:`MediaFile.open`)."""
    return None if value is None else MediaFile.open(value, kind, label)


# The classes with local-file fields have explicit __init__s rather than field converters (as
# News and MsgMenu): type checkers see what the fields take, without converter descriptors.


@attrs.frozen(kw_only=True)
class Text(Message):
    """A text message. ``content`` may hold ``<a href data-miniprogram-appid ...>`` links."""

    msgtype: ClassVar[str] = "text"
    content: str = attrs.field(validator=check.required)


@attrs.frozen(kw_only=True, init=False)
class Image(Message):
    """An image: the ``media_id`` of an uploaded temporary or permanent material, or a local
    ``file`` (JPEG, PNG or GIF, at most 10 MB) uploaded when sent."""

    msgtype: ClassVar[str] = "image"
    media_fields: ClassVar[tuple[MediaField, ...]] = (
        MediaField("file", "media_id", MediaType.IMAGE),
    )
    media_id: str | None = _media_id(required=True, file="file")
    file: MediaFile | None = attrs.field(default=None)

    def __init__(self, *, media_id: str | None = None, file: LocalSource = None) -> None:
        self.__attrs_init__(media_id=media_id, file=_local(file, MediaType.IMAGE, "Image.file"))


@attrs.frozen(kw_only=True, init=False)
class Voice(Message):
    """A voice message: ``media_id``, or a local ``file`` (AMR or MP3, 2 MB, 60 s)."""

    msgtype: ClassVar[str] = "voice"
    media_fields: ClassVar[tuple[MediaField, ...]] = (
        MediaField("file", "media_id", MediaType.VOICE),
    )
    media_id: str | None = _media_id(required=True, file="file")
    file: MediaFile | None = attrs.field(default=None)

    def __init__(self, *, media_id: str | None = None, file: LocalSource = None) -> None:
        self.__attrs_init__(media_id=media_id, file=_local(file, MediaType.VOICE, "Voice.file"))


@attrs.frozen(kw_only=True, init=False)
class Video(Message):
    """A video: ``media_id`` or a local ``file`` (MP4, 10 MB); its thumbnail, title and
    description optional (the thumbnail: ``thumb_media_id`` or ``thumb_file``, JPEG, 64 KB).

    WeChat's documented payload is ``{media_id, title, description}``; a ``thumb_media_id``
    (the thumbnail's material) is sent only when given.
    """

    msgtype: ClassVar[str] = "video"
    media_fields: ClassVar[tuple[MediaField, ...]] = (
        MediaField("file", "media_id", MediaType.VIDEO),
        MediaField("thumb_file", "thumb_media_id", MediaType.THUMB, required=False),
    )
    media_id: str | None = _media_id(required=True, file="file")
    thumb_media_id: str | None = _media_id(required=False, file="thumb_file")
    title: str | None = _optional()
    description: str | None = _optional()
    file: MediaFile | None = attrs.field(default=None)
    thumb_file: MediaFile | None = attrs.field(default=None)

    def __init__(
        self,
        *,
        media_id: str | None = None,
        thumb_media_id: str | None = None,
        title: str | None = None,
        description: str | None = None,
        file: LocalSource = None,
        thumb_file: LocalSource = None,
    ) -> None:
        self.__attrs_init__(
            media_id=media_id,
            thumb_media_id=thumb_media_id,
            title=title,
            description=description,
            file=_local(file, MediaType.VIDEO, "Video.file"),
            thumb_file=_local(thumb_file, MediaType.THUMB, "Video.thumb_file"),
        )


@attrs.frozen(kw_only=True, init=False)
class Music(Message):
    """Music: ``musicurl``, ``hqmusicurl`` (played on Wi-Fi) and a thumbnail, ``thumb_media_id``
    or a local ``thumb_file`` (JPEG, 64 KB), required."""

    msgtype: ClassVar[str] = "music"
    media_fields: ClassVar[tuple[MediaField, ...]] = (
        MediaField("thumb_file", "thumb_media_id", MediaType.THUMB),
    )
    musicurl: str = attrs.field(validator=check.required)
    hqmusicurl: str = attrs.field(validator=check.required)
    thumb_media_id: str | None = _media_id(required=True, file="thumb_file")
    title: str | None = _optional()
    description: str | None = _optional()
    thumb_file: MediaFile | None = attrs.field(default=None)

    def __init__(
        self,
        *,
        musicurl: str,
        hqmusicurl: str,
        thumb_media_id: str | None = None,
        title: str | None = None,
        description: str | None = None,
        thumb_file: LocalSource = None,
    ) -> None:
        self.__attrs_init__(
            musicurl=musicurl,
            hqmusicurl=hqmusicurl,
            thumb_media_id=thumb_media_id,
            title=title,
            description=description,
            thumb_file=_local(thumb_file, MediaType.THUMB, "Music.thumb_file"),
        )


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


@attrs.frozen(kw_only=True, init=False)
class MiniProgramPage(Message):
    """A mini-program card (linked mini program). Its picture: ``thumb_media_id``, or a local
    ``thumb_file`` uploaded as an image (JPEG, PNG or GIF; 520×416 recommended)."""

    msgtype: ClassVar[str] = "miniprogrampage"
    media_fields: ClassVar[tuple[MediaField, ...]] = (
        MediaField("thumb_file", "thumb_media_id", MediaType.IMAGE),
    )
    title: str = attrs.field(validator=check.required)
    appid: str = attrs.field(validator=check.required)
    pagepath: str = attrs.field(validator=check.required)
    thumb_media_id: str | None = _media_id(required=True, file="thumb_file")
    thumb_file: MediaFile | None = attrs.field(default=None)

    def __init__(
        self,
        *,
        title: str,
        appid: str,
        pagepath: str,
        thumb_media_id: str | None = None,
        thumb_file: LocalSource = None,
    ) -> None:
        self.__attrs_init__(
            title=title,
            appid=appid,
            pagepath=pagepath,
            thumb_media_id=thumb_media_id,
            thumb_file=_local(thumb_file, MediaType.IMAGE, "MiniProgramPage.thumb_file"),
        )


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
    if message.media_fields and message.has_local_files:
        raise ValidationError(
            type(message).__name__,
            "holds a local file: wx.message.send (or wx.media.resolve) uploads it first",
            message,
        )
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
