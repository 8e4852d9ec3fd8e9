"""The fake's media library: temporary media uploaded (or seeded), expiring after 3 days.

The routes in ``_media_routes`` apply WeChat's upload and download rules to this state; the
message routes refuse a send naming a media the library does not hold (40007). Tests seed media
with :meth:`MediaLibrary.add_media` (what a user sent, or a permanent material) and count uploads
on :attr:`MediaLibrary.uploads`.
"""

from __future__ import annotations

import secrets
import threading
from typing import Final

import attrs

from wechat_kf.testing._core import FakeClock, WeChatFail

__all__ = ["MEDIA_LIFETIME", "FakeMedia", "MediaLibrary", "sample_media"]

#: Temporary media live this long (seconds) on the fake clock.
MEDIA_LIFETIME: Final = 3 * 86400
#: Per upload type: the formats accepted (magic prefix -> content type, extension), the size
#: limit, and the errcode of a bad size.
_JPEG: Final = (b"\xff\xd8\xff", "image/jpeg", "jpg")
_PNG: Final = (b"\x89PNG\r\n\x1a\n", "image/png", "png")
_GIF87: Final = (b"GIF87a", "image/gif", "gif")
_GIF89: Final = (b"GIF89a", "image/gif", "gif")
_AMR: Final = (b"#!AMR", "audio/amr", "amr")
_ID3: Final = (b"ID3", "audio/mpeg", "mp3")
_MPEG: Final = (b"\xff\xfb", "audio/mpeg", "mp3")
_MP4: Final = (b"ftyp", "video/mp4", "mp4")  # at offset 4
MAGIC: Final = {
    "image": (_JPEG, _PNG, _GIF87, _GIF89),
    "voice": (_AMR, _ID3, _MPEG, (b"\xff\xf3", "audio/mpeg", "mp3")),
    "video": (_MP4,),
    "thumb": (_JPEG,),
}
SIZE_LIMITS: Final = {
    "image": (10 * 1024 * 1024, 40009),
    "voice": (2 * 1024 * 1024, 40010),
    "video": (10 * 1024 * 1024, 40011),
    "thumb": (64 * 1024, 40012),
}
#: A voice longer than this many seconds is refused (with the voice size errcode, 40010).
MAX_VOICE_SECONDS: Final = 60.0

_SAMPLES: Final = {
    "image": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(16),
    "voice": b"#!AMR\n" + (b"\x3c" + bytes(31)) * 50,  # 50 frames of 12.2 kbit/s: 1 s
    "video": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(32),
    "thumb": b"\xff\xd8\xff\xdb\x00\x43\x00" + bytes(24),
}


def sample_media(kind: str = "image") -> bytes:
    """A tiny valid file of a media type (a JPEG for image/thumb, AMR voice, MP4 video)."""
    return _SAMPLES[kind]


def file_kind(kind: str, data: bytes) -> tuple[str, str] | None:
    """``(content_type, extension)`` if ``data`` is a format the ``kind`` accepts, by magic."""
    for magic, content_type, extension in MAGIC[kind]:
        found = data[4:8] == magic if magic == b"ftyp" else data.startswith(magic)
        if found:
            return content_type, extension
    return None


#: The first character of a media id the fake makes.
_ALPHANUMERIC: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_media_id() -> str:
    """64 URL-safe characters, as WeChat's media ids, never starting with ``-`` (which a
    command line would read as an option)."""
    return secrets.choice(_ALPHANUMERIC) + secrets.token_urlsafe(48)[1:]


@attrs.define(kw_only=True)
class FakeMedia:
    """A media the fake holds: uploaded, or seeded by a test (``permanent``: never expires)."""

    media_id: str
    type: str
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    content_type: str
    extension: str
    created_at: int
    permanent: bool = False
    #: The secret part of a video's download link (``video_url``).
    vkey: str = attrs.field(factory=lambda: secrets.token_hex(16), repr=False)

    def live(self, now: float) -> bool:
        """Whether the media_id still works at ``now`` (3 days after upload, or forever)."""
        return self.permanent or now < self.created_at + MEDIA_LIFETIME


class MediaLibrary:
    """Temporary media and their counters (mixed into FakeWeChat).

    Attributes (read them to assert; mutation happens under ``lock``):
        media: ``media_id -> FakeMedia``, every media the fake holds (expired ones included).
        uploads: the media uploaded through ``/cgi-bin/media/upload``, in order: the counter
            of uploads made.
        downloads: the media_ids downloaded (``/cgi-bin/media/get`` answered the file or its
            ``video_url``), in order.
    """

    clock: FakeClock
    lock: threading.RLock
    media: dict[str, FakeMedia]
    uploads: list[FakeMedia]
    downloads: list[str]

    def _init_media(self) -> None:
        self.media = {}
        self.uploads = []
        self.downloads = []

    def add_media(
        self,
        kind: str = "image",
        data: bytes | None = None,
        *,
        media_id: str | None = None,
        permanent: bool = False,
    ) -> FakeMedia:
        """Hold a media directly (what a user sent, or a permanent material): no upload rules.

        ``data`` defaults to :func:`sample_media` of ``kind``; its content type is taken from
        its bytes (``application/octet-stream`` when unknown). ``media_id`` defaults to a new
        WeChat-like id.
        """
        if kind not in MAGIC:
            raise ValueError(f"kind must be one of {sorted(MAGIC)}, not {kind!r}")
        content = sample_media(kind) if data is None else data
        detected = file_kind(kind, content) or ("application/octet-stream", "bin")
        with self.lock:
            return self._hold(kind, content, detected, media_id=media_id, permanent=permanent)

    def _hold(
        self,
        kind: str,
        data: bytes,
        detected: tuple[str, str],
        *,
        media_id: str | None = None,
        permanent: bool = False,
    ) -> FakeMedia:
        media = FakeMedia(
            media_id=media_id or new_media_id(),
            type=kind,
            data=data,
            content_type=detected[0],
            extension=detected[1],
            created_at=int(self.clock.now()),
            permanent=permanent,
        )
        self.media[media.media_id] = media
        return media

    def live_media(self, media_id: object, *kinds: str) -> FakeMedia:
        """The media ``media_id`` names if it still works (and is one of ``kinds``); 40007."""
        media = self.media.get(media_id) if isinstance(media_id, str) else None
        if media is None or not media.live(self.clock.now()) or (kinds and media.type not in kinds):
            raise WeChatFail(40007, "invalid media_id")
        return media

    def by_vkey(self, vkey: str) -> FakeMedia | None:
        """The video whose download link carries ``vkey``."""
        return next((m for m in self.media.values() if m.vkey == vkey), None)
