"""The message options of ``send`` and ``send-many``, and the message they describe.

One option per message type (``--text``, ``--image``, ``--menu-item`` ..., or ``--json-file``
with WeChat's own JSON shape), a few detail options that belong to some types (``--title``,
``--thumb-media-id`` ...), and how to send it (``--kf-account``, ``--ai-generated``).

``--image``, ``--voice``, ``--video`` and ``--thumb-media-id`` take a media_id or a local file:
a value naming a file (or looking like a path) is the file, uploaded when sent (once for a
whole ``send-many``); anything else is a media_id, used as is.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import click

from wechat_kf import (
    Article,
    Image,
    MenuItem,
    Message,
    MiniProgramPage,
    MpNews,
    MpNewsArticle,
    MsgMenu,
    Music,
    News,
    RawMessage,
    Text,
    Video,
    Voice,
    WxCard,
)
from wechat_kf._files import MediaFile, digest
from wechat_kf.messages import envelope

__all__ = ["Outbound", "build_message", "message_from_json", "message_options"]

F = TypeVar("F", bound=Callable[..., Any])

#: WeChat's ``msgtype`` -> the SDK's class, for ``--json-file``.
MESSAGE_CLASSES: Final[Mapping[str, type[Message]]] = {
    cls.msgtype: cls
    for cls in (
        Text,
        Image,
        Voice,
        Video,
        Music,
        News,
        MpNews,
        MpNewsArticle,
        MsgMenu,
        WxCard,
        MiniProgramPage,
    )
}

#: The options that choose the message type (exactly one per send).
TYPE_OPTIONS: Final = (
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "wxcard",
    "menu_items",
    "miniprogram",
    "json_file",
)
#: Detail options and the type options they belong to.
DETAIL_OPTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "thumb_media_id": ("video", "music"),
    "title": ("video", "music", "news"),
    "description": ("video", "music", "news"),
    "picurl": ("news",),
    "hq_music_url": ("music",),
    "menu_head": ("menu_items",),
    "menu_tail": ("menu_items",),
}


@attrs.frozen(kw_only=True)
class Outbound:
    """A message and how to send it."""

    message: Message
    kf_account: str | None = None
    ai_generated: bool = False

    def wire(self) -> dict[str, Any]:
        """What every recipient's request carries besides ``touser``.

        A local file, whose media_id is only known once uploaded, shows as
        ``"file:sha256:<its content's hash>"``: the same file is the same message.
        """
        body = envelope(
            "",
            _by_content(self.message),
            kf_account=self.kf_account,
            ai_generated=self.ai_generated,
        )
        del body["touser"]
        return body

    def fingerprint(self) -> str:
        """``sha256:...`` of the wire body (message, ``kf_account``, AI marker) without ``touser``.

        Equal for equal sends however they were written (options or ``--json-file``, key order).
        """
        canonical = json.dumps(
            self.wire(), ensure_ascii=False, sort_keys=True, separators=(",", ":")
        )
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def describe(self, limit: int = 60) -> str:
        """The message for people: ``text: 【通知】今晚...`` (at most ``limit`` characters)."""
        payload = self.wire()[self.message.msgtype]
        detail = payload.get("content") if isinstance(payload, dict) else None
        if not isinstance(detail, str):
            detail = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        text = f"{self.message.msgtype}: {' '.join(detail.split())}"
        return text if len(text) <= limit else text[: limit - 1] + "…"


def _by_content(message: Message) -> Message:
    """``message`` with each local file named by its content hash instead of a media_id."""
    if not message.media_fields or not message.has_local_files:
        return message
    changes: dict[str, Any] = {}
    for field in message.media_fields:
        file: MediaFile | None = getattr(message, field.file)
        if file is not None:
            data = file.data if file.data is not None else _read(file)
            changes[field.file] = None
            changes[field.target] = f"file:sha256:{digest(data)}"
    named: Message = attrs.evolve(message, **changes)  # type: ignore[misc]
    return named


def _read(file: MediaFile) -> bytes:
    assert file.path is not None
    try:
        return file.path.read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read {file.path}: {exc.strerror}") from None


def media_or_file(value: str, id_field: str, file_field: str) -> dict[str, Any]:
    """``{id_field: value}`` for a media_id, ``{file_field: Path(value)}`` for a local file.

    A value is a file when it names one, or looks like a path (a media_id never holds ``/``,
    ``\\`` or ``.``): then it must exist.
    """
    if os.path.isfile(value):
        return {file_field: Path(value)}
    if any(mark in value for mark in ("/", "\\", ".")):
        raise click.UsageError(f"{value}: no such file (a media_id holds no '/', '\\' or '.')")
    return {id_field: value}


def _flag(name: str) -> str:
    return "--menu-item" if name == "menu_items" else "--" + name.replace("_", "-")


def message_options(command: F) -> F:
    """Add the message options; the command receives them as keyword arguments."""
    options = [
        click.option("--text", metavar="TEXT", help="A text message (may hold <a href> links)."),
        click.option(
            "--image",
            metavar="PATH|MEDIA_ID",
            help="An image: a JPEG/PNG/GIF file (uploaded) or a media_id.",
        ),
        click.option(
            "--voice",
            metavar="PATH|MEDIA_ID",
            help="A voice message: an AMR/MP3 file (uploaded) or a media_id.",
        ),
        click.option(
            "--video",
            metavar="PATH|MEDIA_ID",
            help="A video: an MP4 file (uploaded) or a media_id (--title, --description, "
            "--thumb-media-id optional).",
        ),
        click.option(
            "--music",
            metavar="URL",
            help="Music; needs --thumb-media-id (--hq-music-url, --title, --description optional).",
        ),
        click.option(
            "--news",
            metavar="URL",
            help="A link card to URL; needs --title (--description, --picurl optional).",
        ),
        click.option("--mpnews", metavar="MEDIA_ID", help="An article from the material library."),
        click.option("--mpnewsarticle", metavar="ARTICLE_ID", help="A published article."),
        click.option("--wxcard", metavar="CARD_ID", help="A card coupon."),
        click.option(
            "--menu-item",
            "menu_items",
            metavar="ID=CONTENT",
            multiple=True,
            help="A menu choice; repeat for each (--menu-head, --menu-tail optional).",
        ),
        click.option(
            "--miniprogram",
            metavar="TITLE,APPID,PAGEPATH,THUMB_MEDIA_ID",
            help="A mini-program card (its picture: a media_id, or an image file to upload).",
        ),
        click.option(
            "--json-file",
            type=click.Path(exists=True, dir_okay=False, allow_dash=True),
            help='The message as WeChat JSON, e.g. {"msgtype": "text", "text": {"content": '
            '"hi"}} ("-": stdin). Types the SDK does not know are sent verbatim.',
        ),
        click.option(
            "--thumb-media-id",
            metavar="PATH|MEDIA_ID",
            help="Thumbnail of a video/music: a JPEG file of at most 64 KB, or a media_id.",
        ),
        click.option("--title", help="Title of a video, music or news card."),
        click.option("--description", help="Description of a video, music or news card."),
        click.option("--picurl", metavar="URL", help="Picture of a news card."),
        click.option("--hq-music-url", metavar="URL", help="High-quality music URL (Wi-Fi)."),
        click.option("--menu-head", metavar="TEXT", help="Text above the menu choices."),
        click.option("--menu-tail", metavar="TEXT", help="Text below the menu choices."),
        click.option(
            "--kf-account",
            metavar="ACCOUNT",
            help="Send as this agent (its avatar and nickname show).",
        ),
        click.option("--ai-generated", is_flag=True, help="Mark the content as AI-generated."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_message(options: Mapping[str, Any]) -> Outbound:
    """The message the options describe.

    Raises:
        click.UsageError: no message type, several, or detail options that do not fit.
        wechat_kf.ValidationError: a value breaks one of WeChat's documented limits.
    """
    # An empty value counts as given (and fails validation); an unused --menu-item is ().
    chosen = [name for name in TYPE_OPTIONS if options.get(name) not in (None, ())]
    if not chosen:
        raise click.UsageError(
            "say what to send: --text, --image, --voice, --video, --music, --news, --mpnews, "
            "--mpnewsarticle, --wxcard, --menu-item, --miniprogram or --json-file"
        )
    if len(chosen) > 1:
        flags = ", ".join(_flag(name) for name in chosen)
        raise click.UsageError(f"send one message type at a time (got {flags})")
    kind = chosen[0]
    for detail, owners in DETAIL_OPTIONS.items():
        if options.get(detail) is not None and kind not in owners:
            fits = ", ".join(_flag(owner) for owner in owners)
            raise click.UsageError(f"{_flag(detail)} goes with {fits}, not {_flag(kind)}")
    kf_account: str | None = options.get("kf_account")
    ai_generated = bool(options.get("ai_generated"))
    if kind == "json_file":
        return message_from_json(
            _load_json(options["json_file"]), kf_account=kf_account, ai_generated=ai_generated
        )
    message = _message_from_options(kind, options)
    return Outbound(message=message, kf_account=kf_account, ai_generated=ai_generated)


def _needs(options: Mapping[str, Any], kind: str, detail: str) -> str:
    value = options.get(detail)
    if not value:
        raise click.UsageError(f"{_flag(kind)} needs {_flag(detail)}")
    return str(value)


def _message_from_options(kind: str, options: Mapping[str, Any]) -> Message:
    value = options[kind]
    title, description = options.get("title"), options.get("description")
    if kind == "text":
        return Text(content=value)
    if kind == "image":
        return Image(**media_or_file(value, "media_id", "file"))
    if kind == "voice":
        return Voice(**media_or_file(value, "media_id", "file"))
    thumb = options.get("thumb_media_id")
    if kind == "video":
        return Video(
            **media_or_file(value, "media_id", "file"),
            **({} if thumb is None else media_or_file(thumb, "thumb_media_id", "thumb_file")),
            title=title,
            description=description,
        )
    if kind == "music":
        return Music(
            musicurl=value,
            hqmusicurl=options.get("hq_music_url") or value,
            **media_or_file(
                _needs(options, kind, "thumb_media_id"), "thumb_media_id", "thumb_file"
            ),
            title=title,
            description=description,
        )
    if kind == "news":
        article = Article(
            title=_needs(options, kind, "title"),
            description=description,
            url=value,
            picurl=options.get("picurl"),
        )
        return News(articles=[article])
    if kind == "mpnews":
        return MpNews(media_id=value)
    if kind == "mpnewsarticle":
        return MpNewsArticle(article_id=value)
    if kind == "wxcard":
        return WxCard(card_id=value)
    if kind == "menu_items":
        return MsgMenu(
            head_content=options.get("menu_head"),
            items=[_menu_item(item) for item in value],
            tail_content=options.get("menu_tail"),
        )
    # miniprogram: the title may hold commas, the other three do not.
    parts = str(value).rsplit(",", 3)
    if len(parts) != 4:
        raise click.UsageError("--miniprogram takes TITLE,APPID,PAGEPATH,THUMB_MEDIA_ID")
    title_part, appid, pagepath, picture = (part.strip() for part in parts)
    return MiniProgramPage(
        title=title_part,
        appid=appid,
        pagepath=pagepath,
        **media_or_file(picture, "thumb_media_id", "thumb_file"),
    )


def _menu_item(text: str) -> MenuItem:
    item_id, sep, content = text.partition("=")
    if not sep:
        raise click.UsageError(f"--menu-item takes ID=CONTENT, e.g. 101=满意 (got {text!r})")
    return MenuItem(id=item_id.strip(), content=content)


def _load_json(path: str) -> Any:
    with click.open_file(path, encoding="utf-8-sig") as stream:
        try:
            return json.load(stream)
        except ValueError as exc:
            raise click.UsageError(f"--json-file {path}: not valid JSON ({exc})") from None


def message_from_json(
    data: Any, *, kf_account: str | None = None, ai_generated: bool = False
) -> Outbound:
    """A message from WeChat's JSON shape ``{"msgtype": "text", "text": {"content": "hi"}}``.

    ``touser`` is ignored (the command names the recipients); ``customservice.kf_account`` and
    ``aimsgcontext.is_ai_msg`` are used unless the options say otherwise. A ``msgtype`` the SDK
    does not model is sent verbatim as a :class:`~wechat_kf.RawMessage`.

    Raises:
        click.UsageError: not that shape, or fields the message type does not have.
        wechat_kf.ValidationError: a value breaks one of WeChat's documented limits.
    """
    if not isinstance(data, dict):
        raise click.UsageError('--json-file: expected an object {"msgtype": ..., ...}')
    msgtype = data.get("msgtype")
    if not isinstance(msgtype, str) or not msgtype:
        raise click.UsageError('--json-file: "msgtype" must be a non-empty string')
    payload = data.get(msgtype)
    if not isinstance(payload, dict):
        raise click.UsageError(f'--json-file: "{msgtype}" must be an object with the message')
    if kf_account is None:
        service = data.get("customservice")
        if isinstance(service, dict) and isinstance(service.get("kf_account"), str):
            kf_account = service["kf_account"]
    context = data.get("aimsgcontext")
    if isinstance(context, dict) and context.get("is_ai_msg") in (1, True):
        ai_generated = True
    cls = MESSAGE_CLASSES.get(msgtype)
    message = RawMessage(type=msgtype, payload=payload) if cls is None else _structure(cls, payload)
    return Outbound(message=message, kf_account=kf_account, ai_generated=ai_generated)


def _structure(cls: type[Message], payload: dict[str, Any]) -> Message:
    """The message of type ``cls`` from its WeChat payload (``list`` -> ``items`` for menus)."""
    fields = dict(payload)
    if cls is MsgMenu:
        if "items" not in fields and "list" in fields:
            fields["items"] = fields.pop("list")
        fields["items"] = [_nested(MenuItem, "msgmenu.list", item) for item in _items(fields)]
    elif cls is News:
        articles = fields.get("articles")
        if not isinstance(articles, list):
            raise click.UsageError('--json-file: "news.articles" must be a list of articles')
        fields["articles"] = [_nested(Article, "news.articles", item) for item in articles]
    message: Message = _nested(cls, cls.msgtype, fields)
    return message


def _items(fields: dict[str, Any]) -> list[Any]:
    items = fields.get("items")
    if not isinstance(items, list):
        raise click.UsageError('--json-file: "msgmenu.list" must be a list of {id, content}')
    return items


def _nested(cls: type[Any], where: str, value: Any) -> Any:
    if not isinstance(value, dict):
        raise click.UsageError(f'--json-file: "{where}" must be an object')
    media_fields = getattr(cls, "media_fields", ())
    local = {field.file for field in media_fields}  # JSON names media by id, not local files
    known = {field.name for field in attrs.fields(cls)} - local
    unknown = sorted(set(value) - known)
    if unknown:
        raise click.UsageError(
            f'--json-file: "{where}" has no field {", ".join(unknown)} '
            f"(fields: {', '.join(sorted(known))})"
        )
    required = {field.name for field in attrs.fields(cls) if field.default is attrs.NOTHING}
    required |= {field.target for field in media_fields if field.required}
    missing = sorted(required - set(value))
    if missing:
        raise click.UsageError(f'--json-file: "{where}" needs {", ".join(missing)}')
    return cls(**value)
