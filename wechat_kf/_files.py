"""Local files the SDK uploads (an agent's avatar, media for messages): read, recognised, checked.

One place reads a *source* (the file's bytes, a path, or a binary file object) bounded by a size
limit, recognises its format from its own bytes (never from a file name or extension), and
checks WeChat's documented limits before any request. :class:`MediaFile` is such a file checked
against one media type's limits: what ``Image(file="shop.jpg")`` holds.

Temporary media limits (``POST /cgi-bin/media/upload``; the current official page, 2025, and its
English twin; ``/work/shared/API.md``, "Added facts"):

=========  ====================  =========================================================
type       formats (by content)  size
=========  ====================  =========================================================
image      JPEG, PNG, GIF        10 MB (see below)
voice      AMR, MP3              2 MB, at most 60 s of audio
video      MP4                   10 MB
thumb      JPEG                  64 KB (video and music thumbnails)
=========  ====================  =========================================================

**Which image limit.** The current page says both "图片(image): 10M" (its format list, like the
English page and the older wiki's later revisions) and "文件大小限制：图片2MB" (its notes); older
copies (and most blog posts, wechatpy's and EasyWeChat's docs) say 2 MB. We enforce **10 MB**:
refusing a 3 MB picture WeChat accepts would make it unsendable through this SDK, while a 3 MB
picture WeChat refuses costs one round trip and raises a typed :class:`~wechat_kf.MediaSizeError`
(40009, whose hint names the older 2 MB figure). Shrink pictures above 2 MB if you see it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO, Final

import anyio
import attrs

from wechat_kf._enums import OpenStrEnum
from wechat_kf._errors import ValidationError

__all__ = [
    "AMR",
    "GIF",
    "JPEG",
    "MP3",
    "MP4",
    "PNG",
    "FileFormat",
    "FileSource",
    "MediaFile",
    "MediaLimits",
    "MediaType",
    "audio_seconds",
    "read_source",
    "size_text",
    "sniff",
    "upload_form",
]

KB: Final = 1024
MB: Final = 1024 * 1024

#: A file to upload: its bytes, a path to it, or a binary file object (read from where it is).
FileSource = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]

#: Bytes read from a path to recognise its format when a message is built.
_HEAD: Final = 64


@attrs.frozen
class FileFormat:
    """A file format the SDK recognises by its first bytes."""

    name: str
    content_type: str
    extension: str

    def __repr__(self) -> str:
        return self.name


JPEG: Final = FileFormat("JPEG", "image/jpeg", "jpg")
PNG: Final = FileFormat("PNG", "image/png", "png")
GIF: Final = FileFormat("GIF", "image/gif", "gif")
AMR: Final = FileFormat("AMR", "audio/amr", "amr")
MP3: Final = FileFormat("MP3", "audio/mpeg", "mp3")
MP4: Final = FileFormat("MP4", "video/mp4", "mp4")

_AMR_NB: Final = b"#!AMR\n"
_AMR_WB: Final = b"#!AMR-WB\n"


def sniff(data: bytes) -> FileFormat | None:
    """The format of a file by its first bytes (its "magic"), or ``None`` for any other."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if data.startswith((_AMR_NB, _AMR_WB)):
        return AMR
    if data.startswith(b"ID3") or _mp3_header(data, 0) is not None:
        return MP3
    if data[4:8] == b"ftyp":
        return MP4
    return None


def upload_form(name: str, data: bytes, fmt: FileFormat) -> dict[str, tuple[str, bytes, str]]:
    """The multipart field ``media`` WeChat's uploads take: ``name`` with the format's
    extension (WeChat refuses a file without one), the bytes, the content type."""
    return {"media": (f"{name}.{fmt.extension}", data, fmt.content_type)}


def size_text(size: int) -> str:
    """``10 MB``, ``64 KB``, ``123 bytes``: a limit as the docs say it."""
    if size >= MB and size % MB == 0:
        return f"{size // MB} MB"
    if size >= KB and size % KB == 0:
        return f"{size // KB} KB"
    return f"{size} bytes"


# --------------------------------------------------------------------------- reading


def _too_big(field: str, max_bytes: int, size: int, value: object) -> ValidationError:
    return ValidationError(
        field, f"must be at most {size_text(max_bytes)} (got {size} bytes)", value
    )


def _read_object(source: object, field: str, max_bytes: int) -> bytes | None:
    """The bytes of an in-memory source or a binary file object; ``None`` for a path."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        return None
    read = getattr(source, "read", None)
    if not callable(read):
        raise ValidationError(field, "must be bytes, a path or a binary file object", source)
    data = read(max_bytes + 1)
    if not isinstance(data, bytes):
        raise ValidationError(field, "the file object must be opened in binary mode", source)
    return data


def _checked(data: bytes, field: str, max_bytes: int, value: object) -> bytes:
    if not data:
        raise ValidationError(field, "must not be empty", value)
    if len(data) > max_bytes:
        raise _too_big(field, max_bytes, len(data), value)
    return data


async def read_source(source: FileSource, *, field: str, max_bytes: int) -> bytes:
    """The bytes of ``source``, at most ``max_bytes`` of them (a path is read asynchronously).

    Raises:
        ValidationError: ``field`` names the source; unreadable, empty, too large, a text-mode
            file object, or not a source at all.
    """
    data = _read_object(source, field, max_bytes)
    if data is None:
        path = anyio.Path(os.fspath(source))  # type: ignore[arg-type]
        try:
            size = (await path.stat()).st_size
            if size > max_bytes:
                raise _too_big(field, max_bytes, size, source)
            data = await path.read_bytes()
        except OSError as exc:
            raise ValidationError(field, f"cannot read the file: {exc.strerror}", source) from exc
    return _checked(data, field, max_bytes, source)


# --------------------------------------------------------------------------- audio length

#: AMR frame sizes in bytes (header included) per frame type; every frame is 20 ms of audio.
_AMR_NB_FRAMES: Final = (13, 14, 16, 18, 20, 21, 27, 32, 6, 1, 1, 1, 1, 1, 1, 1)
_AMR_WB_FRAMES: Final = (18, 24, 33, 37, 41, 47, 51, 59, 61, 6, 1, 1, 1, 1, 1, 1)

# MPEG audio bitrates (kbps) by (version is MPEG-1, layer) and bitrate index.
_MP3_BITRATES: Final = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# Sample rates by the version bits (0: MPEG-2.5, 2: MPEG-2, 3: MPEG-1) and the rate index.
_MP3_RATES: Final = {0: (11025, 12000, 8000), 2: (22050, 24000, 16000), 3: (44100, 48000, 32000)}


def _mp3_header(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """``(frame_bytes, samples, sample_rate)`` of an MPEG audio frame header at ``pos``."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    version = (data[pos + 1] >> 3) & 0x03
    layer = 4 - ((data[pos + 1] >> 1) & 0x03)  # bits 11 -> layer 1, 01 -> layer 3
    bitrate_index = data[pos + 2] >> 4
    rate_index = (data[pos + 2] >> 2) & 0x03
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or "free" bitrate: not a frame we can measure
    mpeg1 = version == 3
    bitrate = _MP3_BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    rate = _MP3_RATES[version][rate_index]
    padding = (data[pos + 2] >> 1) & 0x01
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, 384, rate
    samples = 1152 if layer == 2 or mpeg1 else 576
    return samples // 8 * bitrate // rate + padding, samples, rate


def _mp3_seconds(data: bytes) -> float | None:
    pos = 0
    if data.startswith(b"ID3"):  # skip the ID3v2 tag (synchsafe size; a footer if flagged)
        if len(data) < 10:  # pragma: no mutate (a 10-byte tag has no frame after it either)
            return None
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        pos = 10 + size + (10 if data[5] & 0x10 else 0)
    start = pos
    seconds = 0.0
    while (header := _mp3_header(data, pos)) is not None:
        length, samples, rate = header
        seconds += samples / rate
        pos += length  # a frame is 32 bytes long at least
    return seconds if pos > start else None


def _amr_seconds(data: bytes) -> float | None:
    wide = data.startswith(_AMR_WB)
    sizes = _AMR_WB_FRAMES if wide else _AMR_NB_FRAMES
    pos = len(_AMR_WB if wide else _AMR_NB)
    frames = 0
    while pos < len(data):
        pos += sizes[(data[pos] >> 3) & 0x0F]
        frames += 1
    return frames * 0.02


def audio_seconds(data: bytes) -> float | None:
    """How many seconds of audio an AMR or MP3 file holds; ``None`` when it cannot be told."""
    fmt = sniff(data)
    if fmt is AMR:
        return _amr_seconds(data)
    if fmt is MP3:
        return _mp3_seconds(data)
    return None


# --------------------------------------------------------------------------- media types


class MediaType(OpenStrEnum):
    """A temporary media's ``type``: what it may be used for, and so which limits apply."""

    IMAGE = "image"
    VOICE = "voice"
    VIDEO = "video"
    #: A video's or a music message's thumbnail (JPEG, 64 KB).
    THUMB = "thumb"


@attrs.frozen
class MediaLimits:
    """WeChat's documented limits for one :class:`MediaType` (see the module docstring)."""

    formats: tuple[FileFormat, ...]
    max_bytes: int
    max_seconds: float | None = None

    def describe(self) -> str:
        """``JPEG, PNG or GIF``: the accepted formats as a phrase."""
        names = [fmt.name for fmt in self.formats]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


LIMITS: Final[dict[MediaType, MediaLimits]] = {
    MediaType.IMAGE: MediaLimits((JPEG, PNG, GIF), 10 * MB),
    MediaType.VOICE: MediaLimits((AMR, MP3), 2 * MB, max_seconds=60.0),
    MediaType.VIDEO: MediaLimits((MP4,), 10 * MB),
    MediaType.THUMB: MediaLimits((JPEG,), 64 * KB),
}


def media_type(value: object, field: str = "type") -> MediaType:
    """``value`` as one of the four upload types (``"image"``, ``"voice"``, ...)."""
    if isinstance(value, str) and value in LIMITS:  # a str enum: "image" == MediaType.IMAGE
        return MediaType(value)
    raise ValidationError(field, "must be 'image', 'voice', 'video' or 'thumb'", value)


def _a(kind: MediaType) -> str:
    """``an image``, ``a voice``: the kind with its article."""
    vowels = "aeiou"  # pragma: no mutate (the kinds are lowercase: "XXaeiouXX" is the same)
    return f"{'an' if str(kind)[0] in vowels else 'a'} {kind}"


def check_media(data: bytes, kind: MediaType, field: str, value: object = None) -> FileFormat:
    """Check ``data`` against ``kind``'s limits (size, format by content, audio length)."""
    limits = LIMITS[kind]
    _checked(data, field, limits.max_bytes, value)
    fmt = sniff(data)
    if fmt is None or fmt not in limits.formats:
        found = "an unrecognised format" if fmt is None else fmt.name
        raise ValidationError(
            field, f"{_a(kind)} must be {limits.describe()} by its content (got {found})", value
        )
    if limits.max_seconds is not None:
        seconds = audio_seconds(data)
        if seconds is not None and seconds > limits.max_seconds:
            raise ValidationError(
                field,
                f"{_a(kind)} must be at most {limits.max_seconds:g} s long (got {seconds:.1f} s)",
                value,
            )
    return fmt


def _data_repr(data: bytes | None) -> str:
    return "None" if data is None else f"<{len(data)} bytes>"


@attrs.frozen(kw_only=True)
class MediaFile:
    """A local file checked against one :class:`MediaType`'s limits, to be uploaded when sent.

    Build it with :meth:`open` (messages do: ``Image(file="shop.jpg")``). Bytes and file objects
    are read and checked whole at once; a path is checked by its size and first bytes at once,
    and read (asynchronously) and checked whole again before its upload: it may change meanwhile.
    """

    type: MediaType
    format: FileFormat
    size: int
    #: The file's path; ``None`` for bytes or a file object (then :attr:`data` holds them).
    path: Path | None = None
    data: bytes | None = attrs.field(default=None, repr=_data_repr)

    @classmethod
    def open(cls, source: FileSource | MediaFile, kind: MediaType, field: str) -> MediaFile:
        """Check ``source`` as a ``kind`` media now (a path: its size and its first bytes).

        Raises:
            ValidationError: ``field`` names the source and the limit it breaks.
        """
        if isinstance(source, MediaFile):
            if source.type is not kind:
                raise ValidationError(
                    field, f"must be {_a(kind)} file, not {_a(source.type)}", source
                )
            return source
        limits = LIMITS[kind]
        data = _read_object(source, field, limits.max_bytes)
        if data is not None:
            fmt = check_media(data, kind, field, source)
            return cls(type=kind, format=fmt, size=len(data), data=data)
        path = Path(os.fspath(source))  # type: ignore[arg-type]
        try:
            size = path.stat().st_size
            with path.open("rb") as stream:
                head = stream.read(_HEAD)  # pragma: no mutate (reading it all: same, slower)
        except OSError as exc:
            raise ValidationError(field, f"cannot read the file: {exc.strerror}", source) from exc
        _checked(head, field, limits.max_bytes, source)
        if size > limits.max_bytes:
            raise _too_big(field, limits.max_bytes, size, source)
        sniffed = sniff(head)
        if sniffed is None or sniffed not in limits.formats:
            found = "an unrecognised format" if sniffed is None else sniffed.name
            raise ValidationError(
                field,
                f"{_a(kind)} must be {limits.describe()} by its content (got {found})",
                source,
            )
        return cls(type=kind, format=sniffed, size=size, path=path)

    async def read(self, field: str = "file") -> bytes:
        """The file's bytes, checked whole against its type's limits."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        data = await read_source(self.path, field=field, max_bytes=LIMITS[self.type].max_bytes)
        check_media(data, self.type, field, self.path)
        return data


def digest(data: bytes) -> str:
    """The content hash that names a file in the media-id cache (SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()
