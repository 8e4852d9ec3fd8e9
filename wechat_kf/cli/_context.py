"""What every command shares: the global settings, the client they build, and how they run.

:func:`run` is the one place where the async SDK meets the command line: it runs a command's
coroutine with ``anyio.run`` and turns whatever it raises into one error line and an exit code
(:class:`~wechat_kf.cli._exit.ExitCode`). Tracebacks show only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn, TypeVar

import anyio
import attrs
import click

from wechat_kf import AsyncWeChat, MemoryTokenStore, WindowStore, _defaults
from wechat_kf.cli._exit import ExitCode, exit_code_for, leaf_exceptions
from wechat_kf.cli._output import Output

__all__ = ["Settings", "common_options", "exit_with", "pass_settings", "run"]

F = TypeVar("F", bound=Callable[..., Any])

#: The environment variables the credentials come from.
APPID_ENV = "WECHAT_APPID"
SECRET_ENV = "WECHAT_SECRET"


@attrs.define(kw_only=True)
class Settings:
    """The global options (``wechat-kf --appid ... --json COMMAND``), shared by every command."""

    appid: str | None = None
    #: Never printed: not in the repr, not in any message.
    secret: str | None = attrs.field(default=None, repr=False)
    base_url: str = _defaults.BASE_URL
    json_mode: bool = False
    debug: bool = False
    timeout: float = _defaults.TIMEOUT
    transport: str = "auto"
    _output: Output | None = attrs.field(default=None, init=False, repr=False)

    @property
    def output(self) -> Output:
        """The printer for this invocation (JSON or tables, per ``--json``)."""
        if self._output is None:
            self._output = Output(json_mode=self.json_mode, debug=self.debug)
        return self._output

    def set_json(self) -> None:
        """Switch to JSON output (``--json`` given after the command name)."""
        self.json_mode = True
        if self._output is not None:
            self._output.json_mode = True

    def set_debug(self) -> None:
        """Switch tracebacks and HTTP logs on (``--debug`` given after the command name)."""
        self.debug = True
        if self._output is not None:
            self._output.debug = True

    def client(
        self, *, window_store: WindowStore | None = None, secret_needed: bool = True
    ) -> AsyncWeChat:
        """An :class:`AsyncWeChat` for these credentials and this server.

        ``window_store`` holds its service-window ledger; ``secret_needed=False`` (commands
        that only read the ledger) needs the appid alone: the client never fetches a token.

        Raises:
            click.UsageError: credentials missing, or a setting the SDK refuses.
        """
        wanted = [(f"{APPID_ENV} (or --appid)", self.appid)]
        if secret_needed:
            wanted.append((f"{SECRET_ENV} (or --secret)", self.secret))
        missing = [hint for hint, value in wanted if not value]
        if missing:
            raise click.UsageError(f"credentials missing: set {' and '.join(missing)}")
        assert self.appid is not None
        try:
            return AsyncWeChat(
                self.appid,
                self.secret if secret_needed else None,
                token_store=None if secret_needed else MemoryTokenStore(),
                base_url=self.base_url,
                timeout=self.timeout,
                transport=self.transport,  # type: ignore[arg-type]
                window_store=window_store,
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None


pass_settings = click.make_pass_decorator(Settings, ensure=True)


def _set_json(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Settings).set_json()


def _set_debug(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Settings).set_debug()


def common_options(command: F) -> F:
    """``--json`` and ``--debug`` on a command too, so they work after its name as well."""
    command = click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print JSON for scripts (same as the global --json).",
    )(command)
    return click.option(
        "--debug",
        "debug_flag",
        is_flag=True,
        expose_value=False,
        callback=_set_debug,
        help="Show tracebacks and HTTP logs (same as the global --debug).",
    )(command)


def exit_with(code: int) -> NoReturn:
    """End the command with this exit status."""
    raise click.exceptions.Exit(code)


@contextlib.contextmanager
def _debug_logging(enabled: bool) -> Iterator[None]:
    """With ``--debug``: the SDK's and httpx's logs on stderr (the SDK redacts their tokens)."""
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("wechat_kf", "httpx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush cannot fail too."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, sys.stdout.fileno())
        finally:
            os.close(null)
    except (OSError, ValueError):  # no file descriptor (an in-memory stdout): nothing to flush
        pass


def run(settings: Settings, main: Callable[[], Awaitable[int | None]]) -> None:
    """Run a command's coroutine; turn its outcome into the exit status.

    ``main`` returns an exit code (``None`` is 0). SDK errors print one line (see
    :func:`~wechat_kf.cli._output.describe_error`) and exit with their code; Ctrl-C exits 130;
    a closed stdout (``| head``) exits 141 without a word.
    """
    try:
        with _debug_logging(settings.debug):
            code = anyio.run(main)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except BaseException as exc:
        leaves = leaf_exceptions(exc)
        if any(isinstance(leaf, BrokenPipeError) for leaf in leaves):
            _silence_stdout()
            exit_with(ExitCode.BROKEN_PIPE)  # `| head` had enough: no error line
        primary = next((e for e in leaves if isinstance(e, KeyboardInterrupt)), leaves[0])
        if isinstance(primary, click.exceptions.Exit | click.ClickException | SystemExit):
            raise primary from None
        settings.output.error(primary)
        exit_with(exit_code_for(primary))
    if code:
        exit_with(code)
