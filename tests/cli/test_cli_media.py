"""``wechat-kf media upload/download`` and ``send``/``send-many`` with a file, on the wire."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.conftest import SEND_PATH, Invoker
from wechat_kf.testing import FakeWeChat, sample_media

UPLOAD = "/cgi-bin/media/upload"


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "shop.jpg"
    path.write_bytes(sample_media("image"))
    return path


def test_upload_prints_the_media_id_and_its_expiry(
    wechat_kf: Invoker, fake: FakeWeChat, picture: Path
) -> None:
    result = wechat_kf("media", "upload", str(picture))
    assert result.exit_code == 0, result.output
    (held,) = fake.uploads
    assert result.stdout == f"{held.media_id}\n"
    assert f"image uploaded from {picture}; usable until " in result.stderr
    data = wechat_kf.json("media", "upload", str(picture), "--type", "thumb")
    assert set(data) == {"media_id", "type", "created_at", "expires_at"}
    assert data["type"] == "thumb"
    assert data["media_id"] == fake.uploads[-1].media_id
    created = datetime.fromisoformat(data["created_at"])
    assert datetime.fromisoformat(data["expires_at"]) - created == timedelta(days=3)


@pytest.mark.parametrize(("kind", "name"), [("voice", "hello.amr"), ("video", "clip.mp4")])
def test_upload_guesses_the_type_from_the_content(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path, kind: str, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(sample_media(kind))
    assert wechat_kf.json("media", "upload", str(path))["type"] == kind
    assert fake.uploads[0].type == kind


def test_upload_refuses_what_wechat_would(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    result = wechat_kf("media", "upload", str(text))
    assert result.exit_code == 2
    assert "not a JPEG, PNG, GIF, AMR, MP3 or MP4 file by its content" in result.stderr
    big = tmp_path / "big.jpg"
    big.write_bytes(sample_media("image") + bytes(64 * 1024))
    result = wechat_kf("media", "upload", str(big), "--type", "thumb")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid source: must be at most 64 KB")
    assert fake.requests_to(UPLOAD) == []


def test_download_writes_the_file(wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path) -> None:
    held = fake.add_media("voice")
    target = tmp_path / "voice.amr"
    result = wechat_kf("media", "download", held.media_id, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == held.data
    assert f"{len(held.data)} bytes (audio/amr) to {target}" in result.stderr
    data = wechat_kf.json("media", "download", held.media_id, "-o", str(target))
    assert data["size"] == len(held.data)
    assert data["path"] == str(target)
    assert data["filename"] == f"{held.media_id}.amr"


def test_download_of_an_expired_media_says_so(wechat_kf: Invoker, tmp_path: Path) -> None:
    result = wechat_kf("media", "download", "gone", "-o", str(tmp_path / "x"))
    assert result.exit_code == 1
    assert "errcode 40007 (invalid media_id: unknown, or a temporary media older than 3 days)" in (
        result.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_send_a_picture_from_a_path_or_by_media_id(
    wechat_kf: Invoker, fake: FakeWeChat, picture: Path
) -> None:
    fake.user_says("o_1")
    result = wechat_kf("send", "o_1", "--image", str(picture))
    assert result.exit_code == 0, result.output
    (held,) = fake.uploads
    body = fake.requests_to(SEND_PATH)[-1].json()
    assert body == {"touser": "o_1", "msgtype": "image", "image": {"media_id": held.media_id}}
    result = wechat_kf("send", "o_1", "--image", held.media_id)  # an id is used as is
    assert result.exit_code == 0, result.output
    assert len(fake.uploads) == 1
    result = wechat_kf("send", "o_1", "--image", "missing/shop.jpg")
    assert result.exit_code == 2
    assert "missing/shop.jpg: no such file" in result.stderr


def test_send_a_video_with_its_thumbnail_files(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    fake.user_says("o_1")
    video, thumb = tmp_path / "clip.mp4", tmp_path / "cover.jpg"
    video.write_bytes(sample_media("video"))
    thumb.write_bytes(sample_media("thumb"))
    result = wechat_kf("send", "o_1", "--video", str(video), "--thumb-media-id", str(thumb))
    assert result.exit_code == 0, result.output
    uploaded_video, uploaded_thumb = fake.uploads
    assert fake.sent_to("o_1")[0]["video"] == {
        "media_id": uploaded_video.media_id,
        "thumb_media_id": uploaded_thumb.media_id,
    }


def test_send_many_uploads_the_picture_once(
    wechat_kf: Invoker, fake: FakeWeChat, picture: Path, tmp_path: Path
) -> None:
    openids = [f"o_user_{n:03d}" for n in range(60)]
    for openid in openids:
        fake.user_says(openid)
    recipients = tmp_path / "users.txt"
    recipients.write_text("\n".join(openids), encoding="utf-8")
    results = tmp_path / "notice.jsonl"
    summary = wechat_kf.json(
        "send-many", str(recipients), "--image", str(picture), "--results", str(results)
    )
    assert summary["sent"] == 60
    assert len(fake.requests_to(UPLOAD)) == 1
    # A re-run with the same file is the same message: everyone already has it.
    again = wechat_kf.json(
        "send-many", str(recipients), "--image", str(picture), "--results", str(results)
    )
    assert again["sent"] == 0
    header = json.loads(results.read_text(encoding="utf-8").splitlines()[0])
    assert header["message"].startswith("image: ")
    # Another picture in the same results file is another message: refused.
    picture.write_bytes(sample_media("image") + b"v2")
    result = wechat_kf(
        "send-many", str(recipients), "--image", str(picture), "--results", str(results)
    )
    assert result.exit_code == 2
    assert "records a run of another message" in result.stderr
