"""Local files: formats by their bytes, WeChat's media limits, every one refused before any request."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from wechat_kf import AsyncWeChat, Image, MiniProgramPage, Music, ValidationError, Video, Voice
from wechat_kf._files import (
    AMR,
    GIF,
    JPEG,
    KB,
    MB,
    MP3,
    MP4,
    PNG,
    MediaFile,
    MediaType,
    audio_seconds,
    size_text,
    sniff,
)
from wechat_kf.testing import FakeWeChat, sample_media

pytestmark = pytest.mark.anyio

JPEG_BYTES = sample_media("image")
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(32)
GIF_BYTES = b"GIF89a" + bytes(32)
MP4_BYTES = sample_media("video")
BMP_BYTES = b"BM" + bytes(40)
WAV_BYTES = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(32)
#: An MPEG-1 Layer III frame: 128 kbit/s at 44.1 kHz, 417 bytes, 1152 samples (26.1 ms).
MP3_FRAME = b"\xff\xfb\x90\x00" + bytes(413)
#: An AMR-NB 12.2 kbit/s frame: 32 bytes, 20 ms.
AMR_FRAME = b"\x3c" + bytes(31)


def amr(frames: int) -> bytes:
    return b"#!AMR\n" + AMR_FRAME * frames


def mp3(frames: int, *, id3: bool = False) -> bytes:
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) if id3 else b""
    return tag + MP3_FRAME * frames


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (JPEG_BYTES, JPEG),
        (PNG_BYTES, PNG),
        (GIF_BYTES, GIF),
        (b"GIF87a" + bytes(8), GIF),
        (amr(1), AMR),
        (b"#!AMR-WB\n" + bytes(8), AMR),
        (mp3(1), MP3),
        (mp3(1, id3=True), MP3),
        (MP4_BYTES, MP4),
        (BMP_BYTES, None),
        (WAV_BYTES, None),
        (b"", None),
        (b"\xff\xd8", None),
    ],
)
def test_formats_are_recognised_by_their_bytes(data: bytes, expected: object) -> None:
    assert sniff(data) is expected


def test_audio_length_of_amr_and_mp3() -> None:
    assert audio_seconds(amr(3000)) == pytest.approx(60.0)
    assert audio_seconds(mp3(100)) == pytest.approx(100 * 1152 / 44100)
    assert audio_seconds(mp3(100, id3=True)) == pytest.approx(100 * 1152 / 44100)
    assert audio_seconds(b"ID3garbage") is None  # cannot tell: not refused for its length
    assert audio_seconds(JPEG_BYTES) is None


def test_size_text_says_limits_as_the_docs_do() -> None:
    assert [size_text(n) for n in (10 * MB, 64 * KB, 1000)] == ["10 MB", "64 KB", "1000 bytes"]


#: (message builder, file) -> the limit named in the error. Every documented limit.
REFUSED: list[Any] = [
    pytest.param(
        Image, BMP_BYTES, "JPEG, PNG or GIF by its content (got an unrecognised", id="image-bmp"
    ),
    pytest.param(Image, JPEG_BYTES + bytes(10 * MB), "at most 10 MB", id="image-10mb+"),
    pytest.param(Image, b"", "must not be empty", id="image-empty"),
    pytest.param(Voice, WAV_BYTES, "AMR or MP3 by its content", id="voice-wav"),
    pytest.param(Voice, JPEG_BYTES, "AMR or MP3 by its content (got JPEG)", id="voice-jpeg"),
    pytest.param(Voice, amr(1) + bytes(2 * MB), "at most 2 MB", id="voice-2mb+"),
    pytest.param(Voice, amr(3001), "at most 60 s long (got 60.0 s)", id="voice-amr-60s+"),
    pytest.param(Voice, mp3(2300), "at most 60 s long (got 60.1 s)", id="voice-mp3-60s+"),
    pytest.param(Video, PNG_BYTES, "MP4 by its content", id="video-png"),
    pytest.param(Video, MP4_BYTES + bytes(10 * MB), "at most 10 MB", id="video-10mb+"),
    pytest.param(Music, PNG_BYTES, "JPEG by its content (got PNG)", id="thumb-png"),
    pytest.param(Music, JPEG_BYTES + bytes(64 * KB), "at most 64 KB", id="thumb-64kb+"),
    pytest.param(MiniProgramPage, WAV_BYTES, "JPEG, PNG or GIF", id="card-wav"),
]


def build(cls: Any, file: Any) -> Any:
    if cls is Video:
        return Video(file=file, thumb_media_id="THUMB")
    if cls is Music:
        return Music(musicurl="u", hqmusicurl="h", thumb_file=file)
    if cls is MiniProgramPage:
        return MiniProgramPage(title="t", appid="wxapp", pagepath="p", thumb_file=file)
    return cls(file=file)


@pytest.mark.parametrize(("cls", "data", "limit"), REFUSED)
@pytest.mark.parametrize("source", ["bytes", "path", "file object"])
def test_every_documented_limit_is_refused_when_the_message_is_built(
    cls: Any, data: bytes, limit: str, source: str, tmp_path: Path
) -> None:
    file: Any = data
    if source == "path":
        file = tmp_path / "media.bin"
        file.write_bytes(data)
    elif source == "file object":
        file = io.BytesIO(data)
    if source == "path" and "s long" in limit:
        build(cls, file)  # a path's length is checked when it is read for the upload
        return
    with pytest.raises(ValidationError, match=re.escape(limit)) as info:
        build(cls, file)
    assert info.value.field.endswith("file")


@pytest.mark.parametrize(("cls", "data", "limit"), REFUSED)
async def test_every_documented_limit_is_refused_before_any_request(
    fake: FakeWeChat, wx: AsyncWeChat, cls: Any, data: bytes, limit: str
) -> None:
    kind = {Image: "image", Voice: "voice", Video: "video", Music: "thumb"}.get(cls, "image")
    with pytest.raises(ValidationError, match=re.escape(limit)) as info:
        await wx.media.upload(data, kind)
    assert info.value.field == "source"
    assert not fake.requests  # not even a token request


async def test_a_voice_too_long_in_a_file_is_refused_before_its_upload(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    path = tmp_path / "long.amr"
    path.write_bytes(amr(3001))
    message = Voice(file=path)  # its size and first bytes are fine
    fake.user_says("o_user")
    with pytest.raises(ValidationError, match="at most 60 s long"):
        await wx.message.send("o_user", message)
    assert not fake.requests


async def test_a_path_that_changed_since_the_message_was_built_is_checked_again(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    path = tmp_path / "shop.jpg"
    path.write_bytes(JPEG_BYTES)
    message = Image(file=path)
    path.write_bytes(BMP_BYTES)
    fake.user_says("o_user")
    with pytest.raises(ValidationError, match=r"Image\.file: an image must be JPEG, PNG or GIF"):
        await wx.message.send("o_user", message)
    path.unlink()
    with pytest.raises(ValidationError, match="cannot read the file"):
        await wx.message.send("o_user", message)
    assert not fake.requests


@pytest.mark.parametrize(
    ("source", "limit"),
    [
        ("/no/such/file.jpg", "cannot read the file"),
        (io.StringIO("text"), "opened in binary mode"),
        (12345, "must be bytes, a path or a binary file object"),
    ],
)
def test_unusable_sources(source: Any, limit: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(limit)):
        Image(file=source)


@pytest.mark.parametrize(
    ("kwargs", "limit"),
    [
        ({}, "give media_id or file"),
        ({"media_id": "M", "file": JPEG_BYTES}, "not both"),
        ({"media_id": ""}, "non-empty"),
    ],
)
def test_a_media_is_named_by_id_or_by_file_exactly_once(kwargs: Any, limit: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(limit)):
        Image(**kwargs)


def test_a_message_with_a_file_is_a_frozen_value_that_hides_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "shop.png"
    path.write_bytes(PNG_BYTES)
    by_path, by_bytes = Image(file=path), Image(file=PNG_BYTES)
    assert by_path == Image(file=str(path))
    assert hash(by_bytes) == hash(Image(file=PNG_BYTES))
    assert by_path.file is not None
    assert (by_path.file.type, by_path.file.format, by_path.file.size) == (
        MediaType.IMAGE,
        PNG,
        len(PNG_BYTES),
    )
    assert by_path.file.data is None  # a path is read when it is uploaded
    assert "PNG" not in repr(by_bytes).replace("format=PNG", "")  # no bytes in the repr
    assert "<40 bytes>" in repr(by_bytes)
    assert by_bytes.has_local_files
    assert not Image(media_id="M").has_local_files
    with pytest.raises(AttributeError):
        by_path.media_id = "x"  # type: ignore[misc]


def test_media_file_type_must_match_the_field() -> None:
    thumb = MediaFile.open(JPEG_BYTES, MediaType.THUMB, "thumb")
    assert Video(media_id="V", thumb_file=thumb).thumb_file is thumb
    with pytest.raises(ValidationError, match="must be an image file, not a thumb"):
        Image(file=thumb)
