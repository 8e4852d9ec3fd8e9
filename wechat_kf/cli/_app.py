"""The ``wechat-kf`` command group: global options and every subcommand."""

from __future__ import annotations

import click

from wechat_kf import __version__, _defaults
from wechat_kf.cli._context import APPID_ENV, SECRET_ENV, Settings
from wechat_kf.cli.agents import agents
from wechat_kf.cli.demo import demo
from wechat_kf.cli.fake_server import fake_server
from wechat_kf.cli.media import media
from wechat_kf.cli.records import records
from wechat_kf.cli.send import send, send_many
from wechat_kf.cli.sessions import sessions
from wechat_kf.cli.windows import windows

__all__ = ["cli"]

_EPILOG = """\b
Exit status:
  0    success
  1    WeChat refused the request (errcode; the error line shows its rid)
  2    usage error: bad option or input, unreadable file
  3    network, timeout, HTTP error, malformed answer, or Redis failed: no usable answer
  4    send-many: some recipients failed or their outcome is unknown
  130  interrupted (send-many resumes from its --results file)
  141  stdout closed by its reader (e.g. | head): stopped quietly
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=_EPILOG,
)
@click.option(
    "--appid",
    envvar=APPID_ENV,
    show_envvar=True,
    metavar="APPID",
    help="The official account's AppID.",
)
@click.option(
    "--secret",
    envvar=SECRET_ENV,
    show_envvar=True,
    metavar="SECRET",
    help="Its AppSecret (prefer the environment variable: options show in `ps`). Never printed.",
)
@click.option(
    "--base-url",
    envvar="WECHAT_BASE_URL",
    show_envvar=True,
    default=_defaults.BASE_URL,
    show_default=True,
    help="Send the requests here instead (a proxy, the fake WeChat on a loopback port).",
)
@click.option("--json", "json_mode", is_flag=True, help="Print JSON for scripts.")
@click.option("--debug", is_flag=True, help="Show tracebacks and HTTP logs (tokens redacted).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=_defaults.TIMEOUT,
    show_default=True,
    help="Seconds per HTTP exchange.",
)
@click.option(
    "--transport",
    type=click.Choice(["auto", "anyio", "aiohttp", "httpx"]),
    default="auto",
    show_default=True,
    help="HTTP transport: auto = aiohttp when installed, else the SDK's own (anyio).",
)
@click.version_option(__version__, "-V", "--version", prog_name="wechat-kf")
@click.pass_context
def cli(
    ctx: click.Context,
    appid: str | None,
    secret: str | None,
    base_url: str,
    json_mode: bool,
    debug: bool,
    timeout: float,
    transport: str,
) -> None:
    """The WeChat customer-service API from the command line.

    Try it without credentials: `wechat-kf demo`. Real commands read the credentials from
    WECHAT_APPID and WECHAT_SECRET.
    """
    settings = ctx.ensure_object(Settings)
    settings.appid = appid
    settings.secret = secret
    settings.base_url = base_url
    settings.timeout = timeout
    settings.transport = transport
    if json_mode:
        settings.set_json()
    if debug:
        settings.set_debug()


for _command in (agents, send, send_many, sessions, records, media, windows, demo, fake_server):
    cli.add_command(_command)
