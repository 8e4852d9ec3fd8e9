"""Sending from a file: one upload for any number of sends, a refused media re-uploaded once.

Every test that takes ``wx`` runs against the fake in-process and on a real loopback port;
``fake.uploads`` counts the uploads the fake received.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from wechat_kf import (
    AsyncWeChat,
    Image,
    InvalidMediaIdError,
    MediaStoreError,
    MediaTypeError,
    MiniProgramPage,
    Music,
    SendStatus,
    UploadedMedia,
    Video,
    Voice,
)
from wechat_kf._pipeline import encode_json
from wechat_kf.messages import envelope
from wechat_kf.testing import FakeWeChat, sample_media
from wechat_kf.testing._media import MEDIA_LIFETIME

pytestmark = pytest.mark.anyio

SEND = "/cgi-bin/message/custom/send"
UPLOAD = "/cgi-bin/media/upload"
PICTURE = sample_media("image")


def users(n: int) -> list[str]:
    return [f"u{i:05d}" for i in range(n)]


def open_windows(fake: FakeWeChat, openids: list[str]) -> None:
    for openid in openids:
        fake.user_says(openid)


def sent_media(fake: FakeWeChat, openid: str) -> list[str]:
    return [body["image"]["media_id"] for body in fake.sent_to(openid)]


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "shop.jpg"
    path.write_bytes(PICTURE)
    return path


async def test_a_file_sent_again_and_again_is_uploaded_once(
    fake: FakeWeChat, wx: AsyncWeChat, picture: Path
) -> None:
    open_windows(fake, ["o_a", "o_b"])
    await wx.message.send("o_a", Image(file=picture))
    await wx.message.send("o_b", Image(file=str(picture)))
    await wx.message.send("o_b", Image(file=PICTURE))  # the same content, as bytes
    (held,) = fake.uploads
    assert sent_media(fake, "o_a") == [held.media_id]
    assert sent_media(fake, "o_b") == [held.media_id] * 2
    assert fake.sent_to("o_a")[0] == {
        "touser": "o_a",
        "msgtype": "image",
        "image": {"media_id": held.media_id},
    }
    await anyio.Path(picture).write_bytes(PICTURE + b"other")  # new content: a new upload
    await wx.message.send("o_a", Image(file=picture))
    assert len(fake.uploads) == 2
    assert sent_media(fake, "o_a")[-1] == fake.uploads[-1].media_id


async def test_concurrent_sends_of_one_file_share_one_upload(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    recipients = users(50)
    open_windows(fake, recipients)
    async with anyio.create_task_group() as tg:
        for openid in recipients:
            tg.start_soon(wx.message.send, openid, Image(file=PICTURE))
    assert len(fake.uploads) == 1
    assert wx.media.cache.uploads == 1


@pytest.mark.parametrize(
    ("anyio_backend", "mode"),
    [("asyncio", "loopback, aiohttp"), ("trio", "in-process")],
    # Real HTTP on asyncio through the fast transport (about 4 s); the httpx pool on loopback
    # would take 25 s per run for the same proof, so trio runs in-process.
)
async def test_a_10000_recipient_send_many_of_one_image_makes_one_upload(
    fake: FakeWeChat, picture: Path, mode: str
) -> None:
    recipients = users(10_000)
    open_windows(fake, recipients)
    message = Image(file=picture)
    if mode == "in-process":
        async with fake.client() as wx:
            report = await wx.message.send_many(recipients, message, max_concurrency=32)
    else:
        with fake.serve() as server:
            async with AsyncWeChat(
                fake.appid, fake.secret, base_url=server.base_url, transport="aiohttp"
            ) as wx:
                report = await wx.message.send_many(recipients, message, max_concurrency=32)
    assert report.sent == 10_000
    assert len(fake.requests_to(UPLOAD)) == 1
    (held,) = fake.uploads
    assert all(sent_media(fake, openid) == [held.media_id] for openid in recipients)


async def test_stream_many_and_personalised_sends_upload_once_per_file(
    fake: FakeWeChat, wx: AsyncWeChat, picture: Path
) -> None:
    recipients = users(30)
    open_windows(fake, recipients)
    async with wx.message.stream_many(recipients, Image(file=picture)) as results:
        statuses = [result.status async for result in results]
    assert statuses == [SendStatus.SENT] * 30
    assert len(fake.uploads) == 1
    other = PICTURE + b"2"

    def personal(openid: str) -> Image:
        return Image(file=other if openid.endswith(("0", "5")) else PICTURE)

    report = await wx.message.send_many(recipients, personal, max_concurrency=8)
    assert report.sent == 30
    assert len(fake.uploads) == 2  # the second picture, once; the first one was cached


async def test_video_music_and_card_files_upload_as_their_types(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    fake.user_says("o_a")
    await wx.message.send(
        "o_a", Video(file=sample_media("video"), thumb_file=sample_media("thumb"), title="t")
    )
    await wx.message.send(
        "o_a", Music(musicurl="u", hqmusicurl="h", thumb_file=sample_media("thumb"))
    )
    await wx.message.send(
        "o_a",
        MiniProgramPage(title="t", appid="wxapp", pagepath="p", thumb_file=PICTURE),
    )
    await wx.message.send("o_a", Voice(file=sample_media("voice")))
    video, thumb, card, voice = fake.uploads  # the music thumb is the video's: cached
    assert [m.type for m in fake.uploads] == ["video", "thumb", "image", "voice"]
    first, music, page, voice_body = fake.sent_to("o_a")
    assert first["video"] == {
        "media_id": video.media_id,
        "thumb_media_id": thumb.media_id,
        "title": "t",
    }
    assert music["music"]["thumb_media_id"] == thumb.media_id
    assert page["miniprogrampage"]["thumb_media_id"] == card.media_id
    assert voice_body["voice"] == {"media_id": voice.media_id}


async def test_resolve_names_the_files_by_media_id(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    resolved = await wx.media.resolve(Image(file=PICTURE))
    assert resolved.message == Image(media_id=fake.uploads[0].media_id)
    ((key, media),) = resolved.uploads
    assert key.startswith("image:")
    assert len(key) == len("image:") + 64
    assert isinstance(media, UploadedMedia)
    plain = Image(media_id="M")
    assert (await wx.media.resolve(plain)).message is plain


# ---------------------------------------------------------------- refused media (40007)


async def test_an_expired_upload_is_uploaded_again_once_and_the_send_made_once_more(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    fake.user_says("o_a")
    await wx.message.send("o_a", Image(file=PICTURE))
    fake.uploads[0].created_at -= MEDIA_LIFETIME  # WeChat dropped it (3 days)
    await wx.message.send("o_a", Image(file=PICTURE))
    assert len(fake.uploads) == 2
    assert len(fake.requests_to(SEND)) == 3  # the refused one, and its one retry
    assert sent_media(fake, "o_a") == [m.media_id for m in fake.uploads]


async def test_an_expired_media_mid_run_is_uploaded_again_once_and_nobody_is_sent_twice(
    fake: FakeWeChat, wx: AsyncWeChat, picture: Path
) -> None:
    recipients = users(400)
    open_windows(fake, recipients)

    def feed() -> Iterator[str]:
        for index, openid in enumerate(recipients):
            if index == 150:  # mid-run, with sends in flight: WeChat drops the picture
                fake.uploads[0].created_at -= MEDIA_LIFETIME
            yield openid

    report = await wx.message.send_many(feed(), Image(file=picture), max_concurrency=16)
    assert report.sent == 400
    _first, second = fake.uploads  # re-uploaded once for the whole run
    for openid in recipients:
        assert len(fake.sent_to(openid)) == 1  # nobody got it twice
    late = [openid for openid in recipients if sent_media(fake, openid) == [second.media_id]]
    assert 250 <= len(late) < 400
    refused = len(fake.requests_to(SEND)) - 400
    assert 1 <= refused <= 16 + 1  # at most the sends in flight at the switch, refused once


async def test_a_refused_media_id_you_named_is_not_retried(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    fake.user_says("o_a")
    with pytest.raises(InvalidMediaIdError):
        await wx.message.send("o_a", Image(media_id="unknown-media"))
    report = await wx.message.send_many(["o_a"], Image(media_id="unknown-media"))
    assert report.errcodes[40007] == 1

    def personal(openid: str) -> Image:
        return Image(media_id="unknown-media")

    report = await wx.message.send_many(["o_a", "o_a"], personal, max_concurrency=1)
    assert dict(report.errcodes) == {40007: 2}
    assert all(isinstance(r.error, InvalidMediaIdError) for r in report.results)
    assert len(fake.requests_to(SEND)) == 4  # one each: nothing to upload again
    assert fake.uploads == []


async def test_a_failed_upload_skips_every_recipient_of_a_bulk_send(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    recipients = users(20)
    open_windows(fake, recipients)
    fake.inject(UPLOAD, errcode=40005)
    report = await wx.message.send_many(recipients, Image(file=PICTURE))
    assert report.skipped == 20
    assert isinstance(report.stopped_by, MediaTypeError)
    assert report.stopped_by.__traceback__ is None  # shared by 20 results: no frames kept
    assert all(r.error is report.stopped_by for r in report.results)
    assert fake.requests_to(SEND) == []


async def test_a_failed_re_upload_fails_the_recipient_never_sends_twice(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    recipients = users(3)
    open_windows(fake, recipients)
    await wx.message.send_many(recipients[:1], Image(file=PICTURE))
    fake.uploads[0].created_at -= MEDIA_LIFETIME
    fake.inject(UPLOAD, errcode=40005, times=10)
    report = await wx.message.send_many(recipients[1:], Image(file=PICTURE), max_concurrency=1)
    assert [r.status for r in report.results] == [SendStatus.FAILED] * 2
    assert report.errcodes[40007] == 2
    error = report.results[0].error
    assert isinstance(error, InvalidMediaIdError)
    assert isinstance(error.__cause__, MediaTypeError)
    assert error.__traceback__ is error.__cause__.__traceback__ is None
    assert fake.sent_to(recipients[1]) == fake.sent_to(recipients[2]) == []


@pytest.mark.parametrize("personalised", [False, True], ids=["fixed", "personalised"])
async def test_a_send_made_again_after_a_re_upload_keeps_its_agent_and_ai_flag(
    fake: FakeWeChat, wx: AsyncWeChat, personalised: bool
) -> None:
    fake.add_agent("kf_1@service", "Ann")
    recipients = users(3)
    open_windows(fake, recipients)
    message = Image(file=PICTURE)
    await wx.message.send_many(recipients[:1], message)
    fake.uploads[0].created_at -= MEDIA_LIFETIME  # WeChat dropped it; the cache still has it

    def personal(openid: str) -> Image:
        return message

    report = await wx.message.send_many(
        recipients[1:],
        personal if personalised else message,
        kf_account="kf_1@service",
        ai_generated=True,
        max_concurrency=1,
    )
    assert [r.status for r in report.results] == [SendStatus.SENT] * 2
    assert dict(report.errcodes) == {}  # the refused send was made again: not a failure
    first, again = fake.uploads  # uploaded again once, for both recipients
    _earlier, refused, *made = fake.requests_to(SEND)
    assert refused.json()["image"] == {"media_id": first.media_id}
    assert [request.body for request in made] == [
        encode_json(
            envelope(
                openid,
                Image(media_id=again.media_id),
                kf_account="kf_1@service",
                ai_generated=True,
            )
        )
        for openid in recipients[1:]
    ]


# ---------------------------------------------------------------- the cache


async def test_with_options_copies_share_the_cache(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.user_says("o_a")
    await wx.message.send("o_a", Image(file=PICTURE))
    await wx.with_options(max_retries=0).message.send("o_a", Image(file=PICTURE))
    assert len(fake.uploads) == 1


class BrokenStore:
    """A media-id store whose backend is down."""

    async def get(self, appid: str, key: str) -> UploadedMedia | None:
        raise MediaStoreError("down")

    async def set(self, appid: str, key: str, media: UploadedMedia, ttl: float) -> None:
        raise MediaStoreError("down")

    async def compare_and_delete(self, appid: str, key: str, media_id: str) -> bool:
        raise MediaStoreError("down")

    async def try_lock(self, appid: str, key: str, ttl: float) -> str | None:
        raise MediaStoreError("down")

    async def unlock(self, appid: str, key: str, fence: str) -> bool:
        raise MediaStoreError("down")


async def test_a_store_outage_never_stops_a_send(
    fake: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    fake.user_says("o_a")
    async with fake.client(media_store=BrokenStore()) as wx:
        await wx.message.send("o_a", Image(file=PICTURE))
        await wx.message.send("o_a", Image(file=PICTURE))  # kept in this process meanwhile
    assert len(fake.uploads) == 1
    assert len(fake.sent_to("o_a")) == 2
    assert "media-id store unavailable" in caplog.text
    assert all(r.levelno == logging.WARNING for r in caplog.records if "store" in r.message)
