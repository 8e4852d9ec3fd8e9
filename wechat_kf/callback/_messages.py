"""The typed models of what WeChat pushes: user messages and events.

Every model keeps the whole flat field mapping it was built from in ``raw`` (tags as WeChat
spells them, see :func:`~wechat_kf.callback._xml.parse_fields`), so a field this SDK does not
model is never lost. An unknown ``MsgType`` becomes :class:`UnknownMessage`, an unknown ``Event``
a plain :class:`Event`: new WeChat types never crash the parser.

Tolerant of what real pushes omit: a field WeChat has been seen to leave out is optional
(``None`` when absent or empty: ``msg_id`` of a text push, ``media_id`` of an old image push).
Only a push that cannot be used is refused with
:class:`~wechat_kf.callback.MalformedCallbackError`: no sender or account to answer
(``FromUserName``, ``ToUserName``), no ``CreateTime`` or ``MsgType``, or a known type without
the field that makes it that type (a text without ``Content``, a session event without its
agent).
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar, Final, TypeAlias, TypeVar

import attrs

from wechat_kf.callback._errors import MalformedCallbackError

__all__ = [
    "Event",
    "ImageMessage",
    "Incoming",
    "KfCloseSession",
    "KfCreateSession",
    "KfSwitchSession",
    "LinkMessage",
    "LocationMessage",
    "ShortVideoMessage",
    "TextMessage",
    "UnknownMessage",
    "UserMessage",
    "VideoMessage",
    "VoiceMessage",
    "incoming_from_fields",
]

_TAG: Final = "wechat_kf.xml_tag"
_PARSE: Final = "wechat_kf.xml_parse"
_INT: Final = re.compile(r"-?[0-9]{1,20}")
_FLOAT: Final = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?")


def _text(value: str) -> str:
    """Free text (Content, Title, ...): kept exactly, whitespace included."""
    return value


def _ident(value: str) -> str:
    """Identifiers (openids, media ids, accounts, types): surrounding whitespace dropped."""
    return value.strip()


def _int(value: str) -> int:
    value = value.strip()
    if not _INT.fullmatch(value):
        raise ValueError("not an integer")
    return int(value)


def _float(value: str) -> float:
    value = value.strip()
    if not _FLOAT.fullmatch(value):
        raise ValueError("not a decimal number")
    return float(value)


def _timestamp(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(_int(value), tz=timezone.utc)
    except (OverflowError, OSError) as exc:
        raise ValueError("not a Unix time") from exc


def _tag(tag: str, parse: Callable[[str], object] = _ident) -> dict[str, object]:
    """Field metadata: the XML tag a field is read from and how its text is parsed."""
    return {_TAG: tag, _PARSE: parse}


def _freeze(fields: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(fields))


@attrs.frozen(kw_only=True)
class Incoming:
    """Base of every model :meth:`CallbackHandler.parse` returns.

    ``to_user`` is your account's original id (``gh_...``), ``from_user`` the user's openid,
    ``create_time`` an aware UTC ``datetime``. ``raw`` holds every field WeChat sent (the text
    of ``CreateTime`` included). ``encrypted`` tells whether the push came in safe mode, and
    ``decrypted_with_previous_key`` whether the previous EncodingAESKey opened it (WeChat has
    not switched to the new key yet); :meth:`CallbackHandler.reply` answers with the same key.
    """

    to_user: str = attrs.field(metadata=_tag("ToUserName"))
    from_user: str = attrs.field(metadata=_tag("FromUserName"))
    create_time: datetime = attrs.field(metadata=_tag("CreateTime", _timestamp))
    msg_type: str = attrs.field(metadata=_tag("MsgType"))
    raw: Mapping[str, str] = attrs.field(factory=dict, repr=False, hash=False)
    encrypted: bool = False
    decrypted_with_previous_key: bool = False

    def __attrs_post_init__(self) -> None:
        # A read-only copy of ``raw`` (not a field converter: type checkers would synthesize
        # an undocumented descriptor for one).
        object.__setattr__(self, "raw", _freeze(self.raw))


@attrs.frozen(kw_only=True)
class UserMessage(Incoming):
    """A message a user sent. ``msg_id`` is WeChat's 64-bit id (the dedupe key).

    Some real pushes carry no ``MsgId`` (``msg_id`` is then ``None``, and duplicates are told
    apart by ``FromUserName`` + ``CreateTime``, as WeChat advises). ``MSG_TYPE`` (class level)
    is the ``MsgType`` each subclass models.
    """

    MSG_TYPE: ClassVar[str] = ""

    msg_id: int | None = attrs.field(default=None, metadata=_tag("MsgId", _int))


@attrs.frozen(kw_only=True)
class TextMessage(UserMessage):
    """A text message; a click on a ``msgmenu`` item carries the item's id in ``bizmsgmenuid``."""

    MSG_TYPE: ClassVar[str] = "text"

    content: str = attrs.field(metadata=_tag("Content", _text))
    bizmsgmenuid: str | None = attrs.field(default=None, metadata=_tag("bizmsgmenuid"))


@attrs.frozen(kw_only=True)
class ImageMessage(UserMessage):
    """An image: ``pic_url`` to download it, ``media_id`` for the media API.

    Old image pushes carry no ``MediaId``: ``media_id`` is then ``None`` (``pic_url`` works).
    """

    MSG_TYPE: ClassVar[str] = "image"

    pic_url: str = attrs.field(metadata=_tag("PicUrl"))
    media_id: str | None = attrs.field(default=None, metadata=_tag("MediaId"))


@attrs.frozen(kw_only=True)
class VoiceMessage(UserMessage):
    """A voice message (``format``: ``amr``, ``speex``...); ``recognition`` when enabled."""

    MSG_TYPE: ClassVar[str] = "voice"

    media_id: str = attrs.field(metadata=_tag("MediaId"))
    format: str = attrs.field(metadata=_tag("Format"))
    recognition: str | None = attrs.field(default=None, metadata=_tag("Recognition", _text))
    media_id_16k: str | None = attrs.field(default=None, metadata=_tag("MediaId16K"))


@attrs.frozen(kw_only=True)
class VideoMessage(UserMessage):
    """A video; ``thumb_media_id`` is its thumbnail."""

    MSG_TYPE: ClassVar[str] = "video"

    media_id: str = attrs.field(metadata=_tag("MediaId"))
    thumb_media_id: str = attrs.field(metadata=_tag("ThumbMediaId"))


@attrs.frozen(kw_only=True)
class ShortVideoMessage(VideoMessage):
    """A short video (``MsgType`` ``shortvideo``); the fields of :class:`VideoMessage`."""

    MSG_TYPE: ClassVar[str] = "shortvideo"


@attrs.frozen(kw_only=True)
class LocationMessage(UserMessage):
    """A shared location: ``Location_X`` is the latitude, ``Location_Y`` the longitude."""

    MSG_TYPE: ClassVar[str] = "location"

    latitude: float = attrs.field(metadata=_tag("Location_X", _float))
    longitude: float = attrs.field(metadata=_tag("Location_Y", _float))
    scale: int = attrs.field(metadata=_tag("Scale", _int))
    label: str = attrs.field(default="", metadata=_tag("Label", _text))


@attrs.frozen(kw_only=True)
class LinkMessage(UserMessage):
    """A shared link."""

    MSG_TYPE: ClassVar[str] = "link"

    title: str = attrs.field(metadata=_tag("Title", _text))
    description: str = attrs.field(default="", metadata=_tag("Description", _text))
    url: str = attrs.field(metadata=_tag("Url"))


@attrs.frozen(kw_only=True)
class UnknownMessage(Incoming):
    """A ``MsgType`` this SDK does not model; every field is in ``raw``."""


@attrs.frozen(kw_only=True)
class Event(Incoming):
    """An event (``MsgType`` ``event``); ``event`` is its ``Event`` field.

    Events without a model of their own (``subscribe``, ``CLICK``, ``SCAN``, ...) arrive as a
    plain ``Event`` with every field in ``raw`` (``EventKey``, ``Ticket``, ...).
    """

    EVENT: ClassVar[str] = ""

    event: str = attrs.field(metadata=_tag("Event"))


@attrs.frozen(kw_only=True)
class KfCreateSession(Event):
    """``kf_create_session``: agent ``kf_account`` took the user's session."""

    EVENT: ClassVar[str] = "kf_create_session"

    kf_account: str = attrs.field(metadata=_tag("KfAccount"))


@attrs.frozen(kw_only=True)
class KfCloseSession(Event):
    """``kf_close_session``: agent ``kf_account`` closed the user's session."""

    EVENT: ClassVar[str] = "kf_close_session"

    kf_account: str = attrs.field(metadata=_tag("KfAccount"))


@attrs.frozen(kw_only=True)
class KfSwitchSession(Event):
    """``kf_switch_session``: the session moved from ``from_kf_account`` to ``to_kf_account``."""

    EVENT: ClassVar[str] = "kf_switch_session"

    from_kf_account: str = attrs.field(metadata=_tag("FromKfAccount"))
    to_kf_account: str = attrs.field(metadata=_tag("ToKfAccount"))


_MESSAGE_TYPES: Final[Mapping[str, type[UserMessage]]] = {
    cls.MSG_TYPE: cls
    for cls in (
        TextMessage,
        ImageMessage,
        VoiceMessage,
        VideoMessage,
        ShortVideoMessage,
        LocationMessage,
        LinkMessage,
    )
}
_EVENT_TYPES: Final[Mapping[str, type[Event]]] = {
    cls.EVENT: cls for cls in (KfCreateSession, KfCloseSession, KfSwitchSession)
}

_M = TypeVar("_M", bound=Incoming)

#: Per model: (attribute, XML tag, parser, required) for each field read from the XML.
_Spec: TypeAlias = tuple[tuple[str, str, Callable[[str], object], bool], ...]
_SPECS: dict[type[Incoming], _Spec] = {}


def _spec(cls: type[Incoming]) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = tuple(
            (
                field.name,
                field.metadata[_TAG],
                field.metadata[_PARSE],
                field.default is attrs.NOTHING,
            )
            for field in attrs.fields(cls)
            if _TAG in field.metadata
        )
    return spec


def incoming_from_fields(
    fields: Mapping[str, str], *, encrypted: bool = False, decrypted_with_previous_key: bool = False
) -> Incoming:
    """Build the model ``fields`` (a flat mapping from the parser) describe."""
    msg_type = fields.get("MsgType", "").strip()
    cls: type[Incoming]
    if msg_type == "event":
        cls = _EVENT_TYPES.get(fields.get("Event", "").strip(), Event)
    else:
        cls = _MESSAGE_TYPES.get(msg_type, UnknownMessage)
    return _build(
        cls,
        fields,
        encrypted=encrypted,
        decrypted_with_previous_key=decrypted_with_previous_key,
    )


def _build(cls: type[_M], fields: Mapping[str, str], **extra: Any) -> _M:
    values: dict[str, Any] = {"raw": fields, **extra}
    for name, tag, parse, required in _spec(cls):
        text = fields.get(tag)
        if not required and (text is None or (parse is not _text and not text.strip())):
            continue  # an optional field absent, or empty: its default
        if text is None:
            what = "" if cls is UnknownMessage else f" {cls.__name__}"
            raise MalformedCallbackError(
                f"the{what} push has no <{tag}> element (or it appears more than once)"
            )
        try:
            values[name] = parse(text)
        except ValueError as exc:
            raise MalformedCallbackError(f"<{tag}> {exc}: {text[:40]!r}") from None
    return cls(**values)
