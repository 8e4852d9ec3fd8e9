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
    digest,
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


# --------------------------------------------------------------------------- MPEG audio frames


def frame(byte1: int, byte2: int, length: int) -> bytes:
    """An MPEG audio frame: its 4-byte header and silence up to ``length`` bytes."""
    return bytes([0xFF, byte1, byte2, 0x00]) + bytes(length - 4)


#: (header bytes 1 and 2) -> (frame bytes, samples, sample rate), from the MPEG audio tables.
MPEG_FRAMES: list[Any] = [
    pytest.param(0xFB, 0x90, 417, 1152, 44100, id="mpeg1-layer3-128k-44.1k"),
    pytest.param(0xFB, 0x92, 418, 1152, 44100, id="mpeg1-layer3-padded"),
    pytest.param(0xFF, 0xC4, 384, 384, 48000, id="mpeg1-layer1-384k-48k"),
    pytest.param(0xFF, 0xC6, 388, 384, 48000, id="mpeg1-layer1-padded"),  # a slot is 4 bytes
    pytest.param(0xFF, 0x10, 32, 384, 44100, id="mpeg1-layer1-32k-44.1k"),  # 34.8 -> 32
    pytest.param(0xFD, 0xA4, 576, 1152, 48000, id="mpeg1-layer2-192k-48k"),
    pytest.param(0xF3, 0x80, 208, 576, 22050, id="mpeg2-layer3-64k-22.05k"),  # 208.98 -> 208
    pytest.param(0xF3, 0x82, 209, 576, 22050, id="mpeg2-layer3-padded"),
    pytest.param(0xF5, 0x84, 384, 1152, 24000, id="mpeg2-layer2-64k-24k"),
    pytest.param(0xE3, 0x18, 72, 576, 8000, id="mpeg2.5-layer3-8k-8k"),
    pytest.param(0xE3, 0x1A, 73, 576, 8000, id="mpeg2.5-layer3-padded"),
]


@pytest.mark.parametrize(("byte1", "byte2", "length", "samples", "rate"), MPEG_FRAMES)
def test_mp3_length_is_the_sum_of_its_frames(
    byte1: int, byte2: int, length: int, samples: int, rate: int
) -> None:
    # Three frames: a frame length off by one byte lands in the silence and stops the count.
    data = frame(byte1, byte2, length) * 3
    assert sniff(data) is MP3
    assert audio_seconds(data) == pytest.approx(3 * samples / rate)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"\x7f\xfb\x90\x00", id="no-sync-byte"),
        pytest.param(b"\xff\x1b\x90\x00", id="no-sync-bits"),
        pytest.param(b"\xff\xeb\x90\x00", id="reserved-version"),
        pytest.param(b"\xff\xf9\x90\x00", id="reserved-layer"),
        pytest.param(b"\xff\xfb\x00\x00", id="free-bitrate"),
        pytest.param(b"\xff\xfb\xf0\x00", id="bad-bitrate"),
        pytest.param(b"\xff\xfb\x9c\x00", id="reserved-rate"),
    ],
)
def test_what_is_not_an_mpeg_audio_frame(header: bytes) -> None:
    assert sniff(header + bytes(60)) is None
    assert audio_seconds(b"ID3\x04\x00\x00\x00\x00\x00\x00" + header + bytes(60)) is None


def test_a_bare_frame_header_is_mp3() -> None:
    assert sniff(MP3_FRAME[:4]) is MP3
    assert sniff(MP3_FRAME[:3]) is None
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x00"
    assert audio_seconds(tag + MP3_FRAME[:4]) == pytest.approx(1152 / 44100)
    assert audio_seconds(tag + MP3_FRAME[:3]) is None


def id3(size: tuple[int, int, int, int], flags: int = 0) -> bytes:
    return b"ID3\x04\x00" + bytes([flags, *size])


@pytest.mark.parametrize(
    "data",
    [
        # The tag's size is synchsafe: 7 bits a byte, (1, 2, 3, 4) -> 2**21 + 2 * 2**14 + 3 * 2**7 + 4.
        pytest.param(id3((1, 2, 3, 4)) + bytes(2_130_308), id="synchsafe-size"),
        pytest.param(id3((0, 0, 1, 0), flags=0x10) + bytes(128 + 10), id="footer"),
        pytest.param(id3((0, 0, 1, 0), flags=0xEF) + bytes(128), id="other-flags-no-footer"),
    ],
)
def test_an_id3_tag_is_skipped_whole(data: bytes) -> None:
    assert audio_seconds(data + MP3_FRAME * 3) == pytest.approx(3 * 1152 / 44100)


def test_amr_wideband_frames_have_their_own_sizes() -> None:
    # Frame type 2 (12.65 kbit/s): 33 bytes; the narrow-band type 2 would be 16.
    data = b"#!AMR-WB\n" + (b"\x14" + bytes(32)) * 50
    assert audio_seconds(data) == pytest.approx(1.0)


def test_size_text_boundaries() -> None:
    sizes = (MB, MB + KB, MB + 1, KB, KB + 1, 0)
    assert [size_text(n) for n in sizes] == [
        "1 MB",
        "1025 KB",
        "1048577 bytes",
        "1 KB",
        "1025 bytes",
        "0 bytes",
    ]


def test_the_digest_naming_a_file_in_the_cache_is_its_sha256() -> None:
    assert digest(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --------------------------------------------------------------------------- size limits


#: Each type's limit and a file of that type exactly that large (a voice of unknown length: an
#: ID3 tag and nothing measurable, so only its size can refuse it).
AT_LIMIT: list[Any] = [
    pytest.param(MediaType.IMAGE, 10 * MB, "10 MB", JPEG_BYTES, id="image"),
    pytest.param(MediaType.VOICE, 2 * MB, "2 MB", b"ID3\x04" + bytes(6), id="voice"),
    pytest.param(MediaType.VIDEO, 10 * MB, "10 MB", MP4_BYTES, id="video"),
    pytest.param(MediaType.THUMB, 64 * KB, "64 KB", JPEG_BYTES, id="thumb"),
]


def padded(head: bytes, size: int) -> bytes:
    return head + bytes(size - len(head))


def source_of(how: str, data: bytes, tmp_path: Path) -> Any:
    if how == "path":
        path = tmp_path / "media.bin"
        path.write_bytes(data)
        return path
    return io.BytesIO(data) if how == "file object" else data


@pytest.mark.parametrize(("kind", "limit", "text", "head"), AT_LIMIT)
@pytest.mark.parametrize("how", ["bytes", "path", "file object"])
def test_each_size_limit_at_exactly_the_limit_and_one_past_it(
    kind: MediaType, limit: int, text: str, head: bytes, how: str, tmp_path: Path
) -> None:
    file = MediaFile.open(source_of(how, padded(head, limit), tmp_path), kind, "f")
    assert (file.type, file.size) == (kind, limit)
    source = source_of(how, padded(head, limit + 1), tmp_path)
    with pytest.raises(ValidationError) as info:
        MediaFile.open(source, kind, "f")
    assert (info.value.field, info.value.limit) == (
        "f",
        f"must be at most {text} (got {limit + 1} bytes)",
    )
    assert info.value.value is source


def test_a_file_object_is_read_one_byte_past_the_limit_at_most() -> None:
    stream = io.BytesIO(padded(JPEG_BYTES, 100 * KB))
    with pytest.raises(ValidationError, match=re.escape("at most 64 KB (got 65537 bytes)")):
        MediaFile.open(stream, MediaType.THUMB, "thumb")
    assert stream.tell() == 64 * KB + 1


async def test_an_upload_at_exactly_the_limit_and_one_past_it(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    path = tmp_path / "thumb.jpg"
    path.write_bytes(padded(JPEG_BYTES, 64 * KB + 1))
    with pytest.raises(ValidationError) as info:
        await wx.media.upload(path, "thumb")
    assert (info.value.field, info.value.limit) == (
        "source",
        "must be at most 64 KB (got 65537 bytes)",
    )
    assert info.value.value is path
    assert not fake.requests
    path.write_bytes(padded(JPEG_BYTES, 64 * KB))
    await wx.media.upload(path, "thumb")
    (held,) = fake.uploads
    assert held.data == padded(JPEG_BYTES, 64 * KB)


# --------------------------------------------------------------------------- refusals: field, text, value


def _builds(tmp_path: Path) -> list[tuple[Any, Any, str, str]]:
    """(message builder, source, field, limit): each way a file is refused when built."""
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    bmp = tmp_path / "picture.bmp"
    bmp.write_bytes(BMP_BYTES)
    big = tmp_path / "big.jpg"
    big.write_bytes(padded(JPEG_BYTES, 64 * KB + 1))
    png = tmp_path / "picture.png"
    png.write_bytes(PNG_BYTES)
    unrecognised = "an image must be JPEG, PNG or GIF by its content (got an unrecognised format)"
    thumb = MediaFile.open(JPEG_BYTES, MediaType.THUMB, "thumb")
    return [
        (Image, 12345, "Image.file", "must be bytes, a path or a binary file object"),
        (Image, io.StringIO("text"), "Image.file", "the file object must be opened in binary mode"),
        (Image, b"", "Image.file", "must not be empty"),
        (Image, empty, "Image.file", "must not be empty"),
        (
            Image,
            "/no/such/file.jpg",
            "Image.file",
            "cannot read the file: No such file or directory",
        ),
        (Image, BMP_BYTES, "Image.file", unrecognised),
        (Image, bmp, "Image.file", unrecognised),
        (Image, thumb, "Image.file", "must be an image file, not a thumb"),
        (Video, PNG_BYTES, "Video.file", "a video must be MP4 by its content (got PNG)"),
        (Video, png, "Video.file", "a video must be MP4 by its content (got PNG)"),
        (Voice, amr(3001), "Voice.file", "a voice must be at most 60 s long (got 60.0 s)"),
        (Music, big, "Music.thumb_file", "must be at most 64 KB (got 65537 bytes)"),
        (
            Music,
            JPEG_BYTES + bytes(64 * KB),
            "Music.thumb_file",
            f"must be at most 64 KB (got {len(JPEG_BYTES) + 64 * KB} bytes)",
        ),
    ]


def test_a_refused_file_names_its_field_the_limit_and_the_value(tmp_path: Path) -> None:
    for cls, source, field, limit in _builds(tmp_path):
        with pytest.raises(ValidationError) as info:
            build(cls, source)
        assert (info.value.field, info.value.limit) == (field, limit), source
        assert info.value.value is source
        assert str(info.value) == f"{field}: {limit}"


def test_a_voice_of_exactly_60_s_or_of_unknown_length_is_accepted() -> None:
    assert Voice(file=amr(3000)).file is not None  # 60.0 s
    unknown = b"ID3garbage" + bytes(100)
    assert audio_seconds(unknown) is None
    assert Voice(file=unknown).file is not None


async def test_an_upload_names_the_source_the_limit_and_the_value(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    types = "must be 'image', 'voice', 'video' or 'thumb'"
    cases: list[tuple[Any, Any, str, str]] = [
        (JPEG_BYTES, "file", "type", types),
        (JPEG_BYTES, 5, "type", types),
        (JPEG_BYTES, ["image"], "type", types),
        (12345, "image", "source", "must be bytes, a path or a binary file object"),
        (io.StringIO("x"), "image", "source", "the file object must be opened in binary mode"),
        ("/no/such/file.jpg", "image", "source", "cannot read the file: No such file or directory"),
        (empty, "image", "source", "must not be empty"),
    ]
    for source, kind, field, limit in cases:
        with pytest.raises(ValidationError) as info:
            await wx.media.upload(source, kind)
        assert (info.value.field, info.value.limit) == (field, limit), source
        assert info.value.value is (kind if field == "type" else source)
    stream = io.BytesIO(BMP_BYTES)
    with pytest.raises(ValidationError) as info:
        await wx.media.upload(stream, "image")
    assert info.value.limit == (
        "an image must be JPEG, PNG or GIF by its content (got an unrecognised format)"
    )
    assert not fake.requests


# --------------------------------------------------------------------------- what gets uploaded


@pytest.mark.parametrize(
    ("kind", "data", "filename", "content_type"),
    [
        ("image", JPEG_BYTES, "image.jpg", "image/jpeg"),
        ("image", PNG_BYTES, "image.png", "image/png"),
        ("image", GIF_BYTES, "image.gif", "image/gif"),
        ("voice", amr(5), "voice.amr", "audio/amr"),
        ("voice", mp3(5), "voice.mp3", "audio/mpeg"),
        ("video", MP4_BYTES, "video.mp4", "video/mp4"),
        ("thumb", JPEG_BYTES, "thumb.jpg", "image/jpeg"),
    ],
)
async def test_an_upload_is_the_field_media_named_by_type_and_format(
    fake: FakeWeChat, wx: AsyncWeChat, kind: str, data: bytes, filename: str, content_type: str
) -> None:
    await wx.media.upload(io.BytesIO(data), kind)
    (held,) = fake.uploads
    assert held.data == data
    (request,) = [r for r in fake.requests if r.path == "/cgi-bin/media/upload"]
    part = f'Content-Disposition: form-data; name="media"; filename="{filename}"\r\n'
    assert part.encode() in request.body
    assert f"Content-Type: {content_type}\r\n\r\n".encode() + data in request.body


# --------------------------------------------------------------------------- a path's file, read later


async def test_a_path_is_read_and_checked_whole_when_its_bytes_are_asked(tmp_path: Path) -> None:
    path = tmp_path / "thumb.jpg"
    path.write_bytes(JPEG_BYTES)
    file = MediaFile.open(path, MediaType.THUMB, "thumb")
    assert "data=None" in repr(file)
    assert await file.read() == JPEG_BYTES
    for content, limit in [
        (padded(JPEG_BYTES, 64 * KB + 1), "must be at most 64 KB (got 65537 bytes)"),
        (PNG_BYTES, "a thumb must be JPEG by its content (got PNG)"),
    ]:
        path.write_bytes(content)
        with pytest.raises(ValidationError) as info:
            await file.read()
        assert (info.value.field, info.value.limit, info.value.value) == ("file", limit, path)
    path.unlink()
    with pytest.raises(ValidationError) as info:
        await file.read("Video.thumb_file")
    assert info.value.field == "Video.thumb_file"
    assert info.value.limit == "cannot read the file: No such file or directory"


def test_bytes_are_held_with_their_format_and_size() -> None:
    message = Image(file=GIF_BYTES)
    assert message.file is not None
    assert (message.file.format, message.file.size, message.file.data) == (
        GIF,
        len(GIF_BYTES),
        GIF_BYTES,
    )
