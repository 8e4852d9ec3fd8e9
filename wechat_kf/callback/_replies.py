"""Passive replies: what your server answers to a push, in the same HTTP exchange.

:meth:`CallbackHandler.reply` turns one of these into the response body, adding the envelope
(``ToUserName``/``FromUserName`` swapped from the push, ``CreateTime``) and encrypting it when the
push was encrypted. WeChat's passive replies are text, image, voice, video, music and news (one
article since 2018-10), plus ``transfer_customer_service``; each but the last and
:class:`Success` has a customer-service message twin (:meth:`Reply.as_message`), which is how a
reply that comes after WeChat stopped waiting still reaches the user (``wx.message.send``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final

import attrs

from wechat_kf import _validation as check
from wechat_kf._errors import ValidationError
from wechat_kf.callback._xml import XMLValue, is_xml_text
from wechat_kf.messages import Article, Image, Message, Music, News, Text, Video, Voice

__all__ = [
    "SUCCESS",
    "ImageReply",
    "MusicReply",
    "NewsReply",
    "Reply",
    "Success",
    "TextReply",
    "TransferCustomerService",
    "VideoReply",
    "VoiceReply",
]

#: The body that acknowledges a push without answering it; it also stops WeChat's retries.
SUCCESS: Final = b"success"

# prefix (1-10 of [A-Za-z0-9_]) @ the account's WeChat ID (1-30 visible characters)
_KF_ACCOUNT: Final = re.compile(r"[A-Za-z0-9_]{1,10}@[^\s<>&@]{1,30}")


@attrs.frozen(kw_only=True)
class Reply:
    """Base of every passive reply."""

    MSG_TYPE: ClassVar[str] = ""

    def xml_fields(self) -> dict[str, XMLValue]:
        """The reply's own elements after the envelope (``MsgType`` first)."""
        return {"MsgType": self.MSG_TYPE}

    def as_message(self) -> Message | None:
        """The customer-service message that says the same, to send it later through the API.

        ``None`` for :class:`Success` (nothing to say) and :class:`TransferCustomerService`
        (only a passive reply can hand a user to an agent).
        """
        return None


def _check_kf_account(_instance: object, _attribute: object, value: str | None) -> None:
    if value is not None and not _KF_ACCOUNT.fullmatch(value):
        raise ValidationError(
            "kf_account",
            "must be prefix@wechat_id: a prefix of 1-10 letters, digits or _, "
            "then @ and the account's WeChat ID (at most 30 characters)",
            value,
        )


@attrs.frozen(kw_only=True)
class TransferCustomerService(Reply):
    """Hand the user's message to customer service (``transfer_customer_service``).

    With ``kf_account`` the message goes to that agent (``TransInfo/KfAccount``), otherwise to
    any available one. Answers user messages only: WeChat does not transfer events.
    """

    MSG_TYPE: ClassVar[str] = "transfer_customer_service"

    kf_account: str | None = attrs.field(default=None, validator=_check_kf_account)

    def xml_fields(self) -> dict[str, XMLValue]:
        """``MsgType`` and, for a chosen agent, ``TransInfo/KfAccount``."""
        fields = super().xml_fields()
        if self.kf_account is not None:
            fields["TransInfo"] = {"KfAccount": self.kf_account}
        return fields


def _check_content(_instance: object, _attribute: object, value: str) -> None:
    if not value:
        raise ValidationError("content", "must not be empty", value)
    if not is_xml_text(value):
        raise ValidationError(
            "content", "must not hold control characters other than tab and newlines", value
        )


@attrs.frozen(kw_only=True)
class TextReply(Reply):
    """Answer with a text message."""

    MSG_TYPE: ClassVar[str] = "text"

    content: str = attrs.field(validator=_check_content)

    def xml_fields(self) -> dict[str, XMLValue]:
        """``MsgType`` and ``Content``."""
        return {**super().xml_fields(), "Content": self.content}

    def as_message(self) -> Text:
        """The same text as a :class:`~wechat_kf.Text` message."""
        return Text(content=self.content)


def _optional() -> Any:
    return attrs.field(default=None, validator=check.optional_text)


def _present(**fields: str | None) -> dict[str, XMLValue]:
    """The optional elements that are set, in the order given."""
    return {tag: value for tag, value in fields.items() if value is not None}


@attrs.frozen(kw_only=True)
class ImageReply(Reply):
    """Answer with an image, by the ``media_id`` of an uploaded material (no GIF animation)."""

    MSG_TYPE: ClassVar[str] = "image"

    media_id: str = attrs.field(validator=check.required)

    def xml_fields(self) -> dict[str, XMLValue]:
        """``MsgType`` and ``Image/MediaId``."""
        return {**super().xml_fields(), "Image": {"MediaId": self.media_id}}

    def as_message(self) -> Image:
        """The same image as an :class:`~wechat_kf.Image` message."""
        return Image(media_id=self.media_id)


@attrs.frozen(kw_only=True)
class VoiceReply(Reply):
    """Answer with a voice message, by ``media_id``."""

    MSG_TYPE: ClassVar[str] = "voice"

    media_id: str = attrs.field(validator=check.required)

    def xml_fields(self) -> dict[str, XMLValue]:
        """``MsgType`` and ``Voice/MediaId``."""
        return {**super().xml_fields(), "Voice": {"MediaId": self.media_id}}

    def as_message(self) -> Voice:
        """The same voice as a :class:`~wechat_kf.Voice` message."""
        return Voice(media_id=self.media_id)


@attrs.frozen(kw_only=True)
class VideoReply(Reply):
    """Answer with a video, by ``media_id``; title and description optional."""

    MSG_TYPE: ClassVar[str] = "video"

    media_id: str = attrs.field(validator=check.required)
    title: str | None = _optional()
    description: str | None = _optional()

    def xml_fields(self) -> dict[str, XMLValue]:
        """``MsgType`` and ``Video`` (``MediaId``, ``Title``, ``Description``)."""
        video: dict[str, XMLValue] = {"MediaId": self.media_id, **_present(Title=self.title)}
        video.update(_present(Description=self.description))
        return {**super().xml_fields(), "Video": video}

    def as_message(self) -> Video:
        """The same video as a :class:`~wechat_kf.Video` message."""
        return Video(media_id=self.media_id, title=self.title, description=self.description)


@attrs.frozen(kw_only=True)
class MusicReply(Reply):
    """Answer with music: ``musicurl``, ``hqmusicurl`` (on Wi-Fi) and the thumbnail's material."""

    MSG_TYPE: ClassVar[str] = "music"

    musicurl: str = attrs.field(validator=check.required)
    hqmusicurl: str = attrs.field(validator=check.required)
    thumb_media_id: str = attrs.field(validator=check.required)
    title: str | None = _optional()
    description: str | None = _optional()

    def xml_fields(self) -> dict[str, XMLValue]:
        """``MsgType`` and ``Music`` (title, description, URLs, ``ThumbMediaId``)."""
        music = _present(Title=self.title, Description=self.description)
        music.update(
            MusicUrl=self.musicurl, HQMusicUrl=self.hqmusicurl, ThumbMediaId=self.thumb_media_id
        )
        return {**super().xml_fields(), "Music": music}

    def as_message(self) -> Music:
        """The same music as a :class:`~wechat_kf.Music` message."""
        return Music(
            musicurl=self.musicurl,
            hqmusicurl=self.hqmusicurl,
            thumb_media_id=self.thumb_media_id,
            title=self.title,
            description=self.description,
        )


def _check_article(_instance: object, _attribute: object, value: Article) -> None:
    if not isinstance(value, Article):
        raise ValidationError("article", "must be a wechat_kf.Article", value)


@attrs.frozen(kw_only=True)
class NewsReply(Reply):
    """Answer with a link card: one :class:`~wechat_kf.Article` (WeChat's limit since 2018-10)."""

    MSG_TYPE: ClassVar[str] = "news"

    article: Article = attrs.field(validator=_check_article)

    def xml_fields(self) -> dict[str, XMLValue]:
        """``MsgType``, ``ArticleCount`` (1) and ``Articles/item``."""
        article = self.article
        item: dict[str, XMLValue] = {"Title": article.title}
        item.update(
            _present(Description=article.description, PicUrl=article.picurl, Url=article.url)
        )
        return {**super().xml_fields(), "ArticleCount": 1, "Articles": {"item": item}}

    def as_message(self) -> News:
        """The same card as a :class:`~wechat_kf.News` message."""
        return News(articles=[self.article])


@attrs.frozen(kw_only=True)
class Success(Reply):
    """Acknowledge without answering: the body is ``success``, never encrypted.

    WeChat stops retrying and shows the user nothing; answer later with the customer-service
    send API if needed.
    """
