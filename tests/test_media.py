"""``wx.media``: uploads of every type from every source, downloads told apart by the answer.

Every test that takes ``wx`` runs against the fake in-process and on a real loopback port.
"""

from __future__ import annotations

import io
import os
import re
import stat
import threading
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.callback.callback_fakes import NOW, TOKEN, push_xml
from tests.callback.callback_fakes import FakeWeChat as PushSide
from wechat_kf import (
    AsyncWeChat,
    ConnectionLostError,
    HTTPStatusError,
    InvalidMediaIdError,
    MalformedResponseError,
    MediaSizeError,
    MediaType,
    MediaTypeError,
    TransportError,
    UploadedMedia,
    ValidationError,
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
