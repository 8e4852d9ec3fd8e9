"""``wechat-kf media``: upload a file as a temporary media, download a media into a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

import click

from wechat_kf._files import MediaType, sniff
from wechat_kf.cli._context import Settings, common_options, pass_settings, run
from wechat_kf.cli._output import format_time, jsonable

__all__ = ["media"]

_TYPES: Final = ("image", "voice", "video", "thumb")
#: The type a file is uploaded as when --type is not given, by its format.
_BY_FORMAT: Final = {
    "JPEG": "image",
    "PNG": "image",
    "GIF": "image",
    "AMR": "voice",
    "MP3": "voice",
    "MP4": "video",
}


@click.group()
def media() -> None:
    """Temporary media (临时素材): uploads live 3 days; download what users send."""


def _guess_type(path: Path) -> str:
    try:
        with path.open("rb") as stream:
            fmt = sniff(stream.read(64))
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror}") from None
    kind = None if fmt is None else _BY_FORMAT.get(fmt.name)
    if kind is None:
        raise click.UsageError(
            f"{path}: not a JPEG, PNG, GIF, AMR, MP3 or MP4 file by its content; "
            "say what it is with --type"
        )
    return kind


@media.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--type",
    "kind",
    type=click.Choice(_TYPES),
    help="image, voice, video or thumb (a video's 64 KB JPEG thumbnail). Default: by the "
    "file's content (JPEG/PNG/GIF image, AMR/MP3 voice, MP4 video).",
)
@common_options
@pass_settings
def upload(settings: Settings, file: Path, kind: str | None) -> None:
    """Upload FILE as a temporary media; print its media_id and when it expires (3 days).

    \b
    wechat-kf media upload shop.jpg
    wechat-kf media upload cover.jpg --type thumb --json
    """

    async def main() -> None:
        media_type = MediaType(kind or _guess_type(file))
        async with settings.client() as wx:
            uploaded = await wx.media.upload(file, media_type)
        out = settings.output
        if out.json_mode:
            out.emit_json(uploaded)
            return
        out.line(uploaded.media_id)
        out.note(
            f"{uploaded.type} uploaded from {file}; usable until {format_time(uploaded.expires_at)}"
        )

    run(settings, main)


@media.command("download")
@click.argument("media_id")
@click.option(
    "-o",
    "--output",
    "target",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help='Write the media here ("-": stdout). A video is fetched from its video_url.',
)
@common_options
@pass_settings
def download(settings: Settings, media_id: str, target: Path) -> None:
    """Download the media MEDIA_ID (what a user sent, or an upload) into a file.

    Media live 3 days on WeChat (those users send included). An id starting with "-" goes
    after "--" (wechat-kf media download -o photo.jpg -- -xYz...).

    \b
    wechat-kf media download MEDIA_ID -o photo.jpg
    """

    async def main() -> None:
        async with settings.client() as wx:
            if str(target) == "-":
                saved = await wx.media.download_to(media_id, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                saved = await wx.media.download_to(media_id, target)
        out = settings.output
        where = "stdout" if saved.path is None else str(saved.path)
        if out.json_mode and saved.path is not None:
            out.emit_json({**jsonable(saved), "path": str(saved.path)})
        else:
            out.note(f"{saved.size} bytes ({saved.content_type or 'unknown type'}) to {where}")

    run(settings, main)
