"""``wx.media``: uploads of every type from every source, downloads told apart by the answer.

Every test that takes ``wx`` runs against the fake in-process and on a real loopback port.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import stat
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from tests.callback.callback_fakes import NOW, TOKEN, push_xml
from tests.callback.callback_fakes import FakeWeChat as PushSide
from wechat_kf import (
    AsyncWeChat,
    ConnectionLostError,
    DownloadedMedia,
    HTTPStatusError,
    Image,
    InvalidMediaIdError,
    MalformedResponseError,
    MediaFile,
    MediaSizeError,
    MediaType,
    MediaTypeError,
    MemoryMediaIdStore,
    TransportError,
    UploadedMedia,
    ValidationError,
    Video,
    WeChatError,
)
from wechat_kf.callback import CallbackHandler, ImageMessage, VoiceMessage
from wechat_kf.testing import FakeWeChat, sample_media
from wechat_kf.testing._media import MEDIA_LIFETIME
from wechat_kf.testing._media_routes import VIDEO_LINK_PATH

pytestmark = pytest.mark.anyio

UPLOAD = "/cgi-bin/media/upload"
GET = "/cgi-bin/media/get"
EXTENSIONS = {"image": "jpg", "voice": "amr", "video": "mp4", "thumb": "jpg"}
CONTENT_TYPES = {
    "image": "image/jpeg",
    "voice": "audio/amr",
    "video": "video/mp4",
    "thumb": "image/jpeg",
}


def source_of(kind: str, how: str, tmp_path: Path) -> Any:
    data = sample_media(kind)
    if how == "path":
        path = tmp_path / f"upload.{EXTENSIONS[kind]}"
        path.write_bytes(data)
        return path
    if how == "str path":
        path = tmp_path / "no-extension-needed"
        path.write_bytes(data)
        return str(path)
    if how == "file object":
        return io.BytesIO(data)
    return data


@pytest.mark.parametrize("kind", ["image", "voice", "video", "thumb"])
@pytest.mark.parametrize("how", ["bytes", "path", "str path", "file object"])
async def test_upload_each_type_from_each_source(
    fake: FakeWeChat, wx: AsyncWeChat, kind: str, how: str, tmp_path: Path
) -> None:
    media = await wx.media.upload(source_of(kind, how, tmp_path), kind)
    assert isinstance(media, UploadedMedia)
    assert media.type is MediaType(kind)
    (held,) = fake.uploads
    assert media.media_id == held.media_id
    assert held.data == sample_media(kind)
    assert media.created_at.timestamp() == held.created_at
    assert media.expires_at - media.created_at == timedelta(days=3)
    (request,) = fake.requests_to(UPLOAD)
    assert request.method == "POST"
    assert re.fullmatch(rf"access_token=[^&]+&type={kind}", request.raw_query)
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    disposition = f'name="media"; filename="{kind}.{EXTENSIONS[kind]}"'
    assert disposition.encode() in request.body
    assert f"Content-Type: {CONTENT_TYPES[kind]}".encode() in request.body
    assert sample_media(kind) in request.body


async def test_a_thumb_upload_answers_thumb_media_id(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    media = await wx.media.upload(sample_media("thumb"), MediaType.THUMB)
    assert media.media_id == fake.uploads[0].media_id  # read from "thumb_media_id"


@pytest.mark.parametrize(
    ("errcode", "cls"),
    [
        (40004, MediaTypeError),
        (40005, MediaTypeError),
        (40006, MediaSizeError),
        (40009, MediaSizeError),
        (40010, MediaSizeError),
        (40011, MediaSizeError),
        (40012, MediaSizeError),
        (45001, MediaSizeError),
    ],
)
async def test_wechat_refusals_of_an_upload_are_typed(
    fake: FakeWeChat, wx: AsyncWeChat, errcode: int, cls: type[WeChatError]
) -> None:
    fake.inject(UPLOAD, errcode=errcode)
    with pytest.raises(cls) as info:
        await wx.media.upload(sample_media("image"), "image")
    assert info.value.errcode == errcode  # type: ignore[attr-defined]
    assert len(fake.requests_to(UPLOAD)) == 1  # a refusal is not retried


async def test_an_upload_type_must_be_one_of_four(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    with pytest.raises(ValidationError, match="'image', 'voice', 'video' or 'thumb'"):
        await wx.media.upload(sample_media("image"), "file")
    assert not fake.requests


async def test_an_upload_lost_in_a_timeout_is_retried(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    # A repeated upload only makes one more temporary media: retried like a read.
    fake.inject(UPLOAD, status=503)
    media = await wx.media.upload(sample_media("image"), "image")
    assert len(fake.requests_to(UPLOAD)) == 2
    assert media.media_id == fake.uploads[-1].media_id


# ---------------------------------------------------------------- downloads


async def test_download_answers_the_file_with_its_headers(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("voice")  # what a user sent
    assert await wx.media.download(held.media_id) == held.data
    async with wx.media.stream(held.media_id) as media:
        assert media.content_type == "audio/amr"
        assert media.filename == f"{held.media_id}.amr"
        assert media.size == len(held.data)
        assert media.video_url is None
        chunks = [chunk async for chunk in media]
    assert b"".join(chunks) == held.data
    (request, _) = fake.requests_to(GET)
    assert request.method == "GET"
    assert request.raw_query.endswith(f"&media_id={held.media_id}")


async def test_download_to_a_path_and_to_a_file_object(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    held = fake.add_media("image", b"\xff\xd8\xff" + bytes(300_000))
    target = tmp_path / "photo.jpg"
    saved = await wx.media.download_to(held.media_id, target)
    assert target.read_bytes() == held.data
    assert (saved.size, saved.content_type, saved.path) == (len(held.data), "image/jpeg", target)
    assert saved.filename == f"{held.media_id}.jpg"
    buffer = io.BytesIO()
    saved = await wx.media.download_to(held.media_id, buffer)
    assert buffer.getvalue() == held.data
    assert saved.path is None
    assert sorted([p.name async for p in anyio.Path(tmp_path).iterdir()]) == ["photo.jpg"]


async def test_download_to_a_device_or_a_fifo_writes_into_it_and_a_link_is_kept(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    # ``download_to(os.devnull)`` once renamed a regular file over /dev/null: a path that is
    # not a regular file is written into as it is; a symbolic link's target is replaced.
    held = fake.add_media("image", b"\xff\xd8\xff" + bytes(100_000))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    saved = await wx.media.download_to(held.media_id, fifo)
    reader.join(timeout=10)
    assert received == [held.data]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert (saved.size, saved.path) == (len(held.data), fifo)

    target = tmp_path / "photo.jpg"
    target.write_bytes(b"old")
    link = tmp_path / "latest.jpg"
    link.symlink_to(target)
    await wx.media.download_to(held.media_id, link)
    assert link.is_symlink()
    assert target.read_bytes() == held.data
    names = sorted([p.name async for p in anyio.Path(tmp_path).iterdir()])
    assert names == ["latest.jpg", "photo.jpg", "pipe"]


async def test_a_video_answers_a_video_url_that_the_sdk_follows(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("video")
    url = await wx.media.video_url(held.media_id)
    assert f"{VIDEO_LINK_PATH}?vkey=" in url
    assert await wx.media.download(held.media_id) == held.data
    async with wx.media.stream(held.media_id) as media:
        assert media.video_url == url
        assert media.content_type == "video/mp4"
        assert await media.read() == held.data
    (link, *_) = fake.requests_to(VIDEO_LINK_PATH)
    assert link.access_token is None  # no token travels to the download link


async def test_video_url_of_a_picture_says_it_is_not_a_video(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("image")
    with pytest.raises(MalformedResponseError, match="not a video: WeChat answered a image/jpeg"):
        await wx.media.video_url(held.media_id)


async def test_unknown_and_expired_media_are_40007(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    with pytest.raises(InvalidMediaIdError, match="40007"):
        await wx.media.download("no-such-media")
    held = fake.add_media("image")
    fake.clock.advance(MEDIA_LIFETIME)
    with pytest.raises(InvalidMediaIdError):
        await wx.media.download(held.media_id)
    with pytest.raises(InvalidMediaIdError):
        async with wx.media.stream(held.media_id):
            pass
    assert fake.downloads == []


async def test_a_json_error_answer_is_never_taken_for_the_file(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("image")
    fake.inject(GET, errcode=45009)  # daily quota: {"errcode": ..} with a JSON content type
    with pytest.raises(WeChatError, match="45009"):
        await wx.media.download(held.media_id)
    fake.inject(GET, malformed=b'{"errcode": 40007, "errmsg": "invalid media_id"}')  # text/plain
    with pytest.raises(InvalidMediaIdError):
        await wx.media.download(held.media_id)
    fake.inject(GET, malformed=b"<html>gateway</html>")  # text, not JSON, not a file
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await wx.media.download(held.media_id)


async def test_download_recovers_a_rejected_token_and_retries_failures(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: Any
) -> None:
    held = fake.add_media("image")
    await wx.access_token()
    fake.invalidate_tokens()  # the next download answers 40001: refreshed once, sent again
    assert await wx.media.download(held.media_id) == held.data
    assert len(fake.token_requests) == 2
    fake.inject(GET, status=502)
    fake.inject(GET, errcode=-1)
    assert await wx.media.download(held.media_id) == held.data
    assert len(sleeps.delays) == 2


async def test_a_download_cut_short_is_typed_and_leaves_no_partial_file(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    held = fake.add_media("image", b"\xff\xd8\xff" + bytes(200_000))
    token = await wx.access_token()
    # Every attempt cut short: a transport that reads the answer whole (the SDK's own, aiohttp)
    # sees the cut inside the pipeline, which retries a read; httpx's, while streaming it.
    fake.inject(GET, truncate=True, times=3)
    target = tmp_path / "photo.jpg"
    with pytest.raises(ConnectionLostError) as info:
        await wx.media.download_to(held.media_id, target)
    assert [p async for p in anyio.Path(tmp_path).iterdir()] == []
    text = "".join(traceback.format_exception(info.value))
    assert token not in text
    fake.inject(GET, truncate=True, times=3)
    with pytest.raises(ConnectionLostError):
        await wx.media.download(held.media_id)


async def test_a_dead_video_link_is_an_http_error(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    held = fake.add_media("video")
    url = await wx.media.video_url(held.media_id)
    held.vkey = "rotated"  # the link WeChat handed out no longer serves
    fake.inject(GET, malformed=f'{{"video_url": "{url}"}}'.encode())
    with pytest.raises(HTTPStatusError, match="HTTP 404") as info:
        await wx.media.download(held.media_id)
    assert info.value.status_code == 404


async def test_download_needs_a_media_id(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    with pytest.raises(ValidationError, match="media_id"):
        await wx.media.download("")
    assert not fake.requests


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_downloads_through_the_aiohttp_transport(
    fake: FakeWeChat, tmp_path: Path, sleeps: Any
) -> None:
    image, video = fake.add_media("image"), fake.add_media("video")
    with fake.serve() as server:
        async with AsyncWeChat(
            fake.appid, fake.secret, base_url=server.base_url, transport="aiohttp", sleep=sleeps
        ) as wx:
            assert await wx.media.download(image.media_id) == image.data
            assert await wx.media.download(video.media_id) == video.data
            # aiohttp reads a body whole before answering: a cut is a failed read, retried.
            fake.inject(GET, truncate=True)
            await wx.media.download_to(image.media_id, tmp_path / "x.jpg")
    assert (tmp_path / "x.jpg").read_bytes() == image.data
    assert len(sleeps.delays) == 1


async def test_misusing_a_download_raises_the_sdks_errors(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("image")
    async with wx.media.stream(held.media_id) as media:
        pass
    try:  # read after its block closed it: the bytes (in-process) or the SDK's error, not httpx's
        late = await media.read()
    except TransportError as exc:
        late = str(exc).encode()
    assert late == held.data or b"read it once, inside its async with block" in late
    with pytest.raises(ValidationError, match="binary file object"):
        await wx.media.download_to(held.media_id, io.StringIO())


async def test_what_a_user_sends_is_downloaded_from_its_push(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    handler = CallbackHandler(token=TOKEN, appid=fake.appid)
    photo, voice = fake.add_media("image"), fake.add_media("voice")
    common = {"ToUserName": "gh_account", "FromUserName": "o_user", "CreateTime": NOW}
    image_push = push_xml(
        {**common, "MsgType": "image", "PicUrl": "http://mmbiz/x", "MediaId": photo.media_id,
         "MsgId": 1001}
    )  # fmt: skip
    voice_push = push_xml(
        {**common, "MsgType": "voice", "MediaId": voice.media_id, "Format": "amr",
         "Recognition": "你好", "MsgId": 1002}
    )  # fmt: skip
    image = handler.parse(*PushSide().push(image_push))
    spoken = handler.parse(*PushSide().push(voice_push))
    assert isinstance(image, ImageMessage)
    assert isinstance(spoken, VoiceMessage)
    assert await wx.media.download(image.media_id) == photo.data
    assert await wx.media.download(spoken.media_id) == voice.data
    assert spoken.recognition == "你好"  # the speech recognition stays on the message


# ---------------------------------------------------------------- what an upload answers


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b'{"type": "image", "created_at": 1700000000}', "the upload answer holds no media_id"),
        (b'{"media_id": "", "thumb_media_id": ""}', "the upload answer holds no media_id"),
        (
            b'{"media_id": "M", "created_at": "soon"}',
            "the upload answer's created_at is not a time",
        ),
        (b'{"media_id": "M", "created_at": [1]}', "the upload answer's created_at is not a time"),
    ],
)
async def test_an_unusable_upload_answer_is_malformed(
    fake: FakeWeChat, wx: AsyncWeChat, answer: bytes, message: str
) -> None:
    fake.inject(UPLOAD, malformed=answer)
    with pytest.raises(MalformedResponseError) as info:
        await wx.media.upload(sample_media("image"), "image")
    assert str(info.value) == message


@pytest.mark.parametrize("created_at", [None, ""])
async def test_an_upload_answer_without_a_time_is_dated_now_with_the_type_asked_for(
    fake: FakeWeChat, wx: AsyncWeChat, created_at: str | None
) -> None:
    body = {"media_id": "M" * 20} | ({} if created_at is None else {"created_at": created_at})
    fake.inject(UPLOAD, malformed=json.dumps(body).encode())
    before = time.time()
    media = await wx.media.upload(sample_media("voice"), "voice")
    after = time.time()
    assert (media.media_id, media.type) == ("M" * 20, MediaType.VOICE)
    assert media.created_at.tzinfo is timezone.utc
    assert before - 1 <= media.created_at.timestamp() <= after + 1


async def test_the_upload_answer_s_own_type_and_time_are_kept(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    fake.inject(UPLOAD, malformed=b'{"thumb_media_id": "T", "type": "thumb", "created_at": "5"}')
    media = await wx.media.upload(sample_media("image"), "image")
    assert media == UploadedMedia(
        media_id="T",
        type=MediaType.THUMB,
        created_at=datetime.fromtimestamp(5, tz=timezone.utc),
        expires_at=datetime.fromtimestamp(5 + MEDIA_LIFETIME, tz=timezone.utc),
    )


async def test_an_upload_s_source_is_named_in_its_errors(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    voice = MediaFile.open(sample_media("voice"), MediaType.VOICE, "file")
    with pytest.raises(ValidationError) as info:
        await wx.media.upload(voice, "image")
    assert (info.value.field, info.value.limit, info.value.value) == (
        "source",
        "is a voice file, not a image one",
        voice,
    )
    with pytest.raises(ValidationError) as info:
        await wx.media.upload(tmp_path / "missing.jpg", "image")
    assert (info.value.field, info.value.limit) == (
        "source",
        "cannot read the file: No such file or directory",
    )
    with pytest.raises(ValidationError) as info:
        await wx.media.upload(b"not a picture", "image")
    assert info.value.field == "source"
    path = tmp_path / "voice.amr"
    path.write_bytes(sample_media("voice"))
    gone = MediaFile.open(path, MediaType.VOICE, "file")
    path.unlink()
    with pytest.raises(ValidationError) as info:
        await wx.media.upload(gone, "voice")
    assert (info.value.field, info.value.value) == ("source", path)
    assert not fake.requests
    media = await wx.media.upload(voice, "voice")  # a MediaFile of the type asked for
    assert fake.uploads[0].data == sample_media("voice")
    assert media.type is MediaType.VOICE


# ---------------------------------------------------------------- downloads, in detail


@pytest.mark.parametrize("call", ["stream", "video_url"])
async def test_an_empty_media_id_is_refused_by_name(
    fake: FakeWeChat, wx: AsyncWeChat, call: str
) -> None:
    with pytest.raises(ValidationError) as info:
        await getattr(wx.media, call)("")
    assert info.value.field == "media_id"


async def test_a_stream_says_what_it_is_and_reads_in_the_chunks_asked_for(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("image", b"\xff\xd8\xff" + bytes(2497))
    async with wx.media.stream(held.media_id) as media:
        assert media.media_id == held.media_id
        assert repr(media) == f"<MediaStream {held.media_id} image/jpeg>"
        chunks = [chunk async for chunk in media.iter_bytes(1000)]
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 500]
    assert b"".join(chunks) == held.data


class Recorder(io.RawIOBase):
    """A binary file object that records each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return len(data)


class Full(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


async def test_download_to_a_file_object_writes_64_kib_chunks_and_counts_them(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("image", b"\xff\xd8\xff" + bytes(300_000))
    out = Recorder()
    saved = await wx.media.download_to(held.media_id, out)
    assert [len(w) for w in out.writes] == [65536] * 4 + [300_003 - 4 * 65536]
    assert b"".join(out.writes) == held.data
    assert saved == DownloadedMedia(
        media_id=held.media_id,
        content_type="image/jpeg",
        filename=f"{held.media_id}.jpg",
        size=300_003,
    )


async def test_a_video_downloaded_to_a_file_names_its_link(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    held = fake.add_media("video")
    url = await wx.media.video_url(held.media_id)
    saved = await wx.media.download_to(held.media_id, tmp_path / "clip.mp4")
    assert (saved.media_id, saved.video_url, saved.size) == (held.media_id, url, len(held.data))
    assert (tmp_path / "clip.mp4").read_bytes() == held.data


async def test_download_to_destinations_that_cannot_be_written(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    held = fake.add_media("image")
    with pytest.raises(ValidationError) as info:
        await wx.media.download_to(held.media_id, io.StringIO())
    assert (info.value.field, info.value.limit) == (
        "destination",
        "must be a binary file object (or a path)",
    )
    assert isinstance(info.value.value, io.StringIO)
    full = Full()
    with pytest.raises(ValidationError) as info:
        await wx.media.download_to(held.media_id, full)
    assert (info.value.field, info.value.limit, info.value.value) == (
        "destination",
        "cannot write: No space left on device",
        full,
    )
    (tmp_path / "plain").write_bytes(b"x")
    for target, reason in [
        (tmp_path / "plain" / "photo.jpg", "Not a directory"),  # a file as a folder
        (tmp_path / "missing" / "photo.jpg", "No such file or directory"),
        (tmp_path, "Is a directory"),  # not a regular file: written in place, which fails
    ]:
        with pytest.raises(ValidationError) as info:
            await wx.media.download_to(held.media_id, target)
        assert (info.value.field, info.value.limit) == (
            "destination",
            f"cannot write {target}: {reason}",
        )
    names = sorted([p.name async for p in anyio.Path(tmp_path).iterdir()])
    assert names == ["plain"]  # no partial file left


async def test_download_to_the_null_device_writes_into_it(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("image")
    saved = await wx.media.download_to(held.media_id, os.devnull)
    assert (saved.size, saved.path) == (len(held.data), Path(os.devnull))


async def test_a_video_link_is_fetched_with_get_retried_and_named_by_host_and_path(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("video")
    fake.inject(VIDEO_LINK_PATH, status=503)
    assert await wx.media.download(held.media_id) == held.data
    first, again = fake.requests_to(VIDEO_LINK_PATH)
    assert first.method == again.method == "GET"
    fake.inject(VIDEO_LINK_PATH, status=404)
    with pytest.raises(HTTPStatusError) as info:
        await wx.media.download(held.media_id)
    assert f"{VIDEO_LINK_PATH}" in str(info.value)
    assert "vkey" not in str(info.value)


@pytest.mark.parametrize(
    "answer",
    [
        {"video_url": 123},
        {"video_url": "ftp://example.com/v.mp4"},
        {f"key{n}": n for n in range(9)},
    ],
)
async def test_a_json_answer_without_a_video_url_is_malformed(
    fake: FakeWeChat, wx: AsyncWeChat, answer: dict[str, Any]
) -> None:
    held = fake.add_media("video")
    fake.inject(
        GET, malformed=json.dumps(answer).encode(), headers={"Content-Type": "application/json"}
    )
    with pytest.raises(MalformedResponseError) as info:
        await wx.media.download(held.media_id)
    keys = sorted(answer)[:8]
    assert str(info.value) == (
        f"media/get answered JSON without an error or a video_url: keys {keys}"
    )


async def test_an_https_video_link_is_followed(fake: FakeWeChat) -> None:
    # In-process only: on loopback the fake speaks plain HTTP, and a TLS handshake with it
    # would only time out.
    held = fake.add_media("video")
    async with fake.client() as wx:
        url = await wx.media.video_url(held.media_id)
        secure = url.replace("http:", "https:")
        fake.inject(GET, malformed=json.dumps({"video_url": secure}).encode())
        assert await wx.media.download(held.media_id) == held.data
    assert len(fake.requests_to(VIDEO_LINK_PATH)) == 1


# ---------------------------------------------------------------- messages holding files


async def test_a_path_is_hashed_once_per_size_mtime_and_inode(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    path = tmp_path / "shop.jpg"
    path.write_bytes(sample_media("image"))
    first = await wx.media.resolve(Image(file=path))
    info = path.stat()
    memo = (str(path.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    assert list(wx.media.cache.digests.items()) == [
        (memo, hashlib.sha256(sample_media("image")).hexdigest())
    ]
    # New bytes, same size, same mtime, same inode: taken for the same file, not read again.
    path.write_bytes(sample_media("image")[:-1] + b"\x01")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    again = await wx.media.resolve(Image(file=path))
    assert again.message == first.message
    assert len(fake.uploads) == 1
    await wx.media.resolve(Image(file=sample_media("image")))  # bytes: nothing to remember
    assert len(list(wx.media.cache.digests.items())) == 1


async def test_a_file_gone_or_changed_before_its_upload_is_named_by_its_field(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    path = tmp_path / "shop.jpg"
    path.write_bytes(sample_media("image"))
    message = Image(file=path)
    path.unlink()
    with pytest.raises(ValidationError) as info:
        await wx.media.resolve(message)
    assert (info.value.field, info.value.limit) == (
        "Image.file",
        "cannot read the file: No such file or directory",
    )
    # Known by its hash, dropped from the cache, then changed into something else: its upload
    # reads it again and refuses it.
    path.write_bytes(sample_media("image"))
    message = Image(file=path)
    resolved = await wx.media.resolve(message)
    before = path.stat()
    path.write_bytes(b"\x00" * before.st_size)  # no picture at all
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ValidationError) as info:
        await wx.media.resolve(message, stale=resolved)
    assert (info.value.field, info.value.value) == ("Image.file", path)
    assert len(fake.uploads) == 1
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))  # a new mtime: read again
    with pytest.raises(ValidationError) as info:
        await wx.media.resolve(message)
    assert (info.value.field, info.value.value) == ("Image.file", path)
    assert len(fake.uploads) == 1


async def test_resolve_skips_a_field_named_by_media_id_and_uploads_the_next(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    message = Video(media_id="V" * 20, thumb_file=sample_media("thumb"), title="t")
    resolved = await wx.media.resolve(message)
    (thumb,) = fake.uploads
    assert resolved.message == Video(media_id="V" * 20, thumb_media_id=thumb.media_id, title="t")
    ((key, media),) = resolved.uploads
    assert key == "thumb:" + hashlib.sha256(sample_media("thumb")).hexdigest()
    assert media.media_id == thumb.media_id


async def test_a_shared_store_holds_the_uploads_under_the_client_s_appid(
    fake: FakeWeChat,
) -> None:
    store = MemoryMediaIdStore()
    async with fake.client(media_store=store) as wx:
        resolved = await wx.media.resolve(Image(file=sample_media("image")))
    ((key, media),) = resolved.uploads
    assert await store.get(fake.appid, key) == media


async def test_a_download_cancelled_midway_leaves_no_partial_file(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    # Cancelled as soon as its partial file appears (or at once, if it never shows between two
    # checkpoints): whatever was written is removed, even though the removal itself awaits.
    held = fake.add_media("image", b"\xff\xd8\xff" + bytes(4_000_000))
    folder = anyio.Path(tmp_path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(wx.media.download_to, held.media_id, tmp_path / "photo.jpg")
        for _ in range(10_000):
            if [p async for p in folder.iterdir()]:
                break
            await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert [p.name async for p in folder.iterdir()] in ([], ["photo.jpg"])
