"""``wechat-kf send`` (one user) and ``wechat-kf send-many`` (a list of users, resumable)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import click

from wechat_kf import AsyncWeChat, _defaults
from wechat_kf.cli._bulk import BulkRun, not_attempted, send_all
from wechat_kf.cli._context import Settings, common_options, pass_settings, run
from wechat_kf.cli._exit import ExitCode, exit_code_for
from wechat_kf.cli._messages import Outbound, build_message, message_options
from wechat_kf.cli._output import Output, describe_error
from wechat_kf.cli._recipients import read_recipients
from wechat_kf.cli._results import (
    SENT,
    UNSURE,
    Outcome,
    ResultsFile,
    ResultsFileBusy,
    RunHeader,
)
from wechat_kf.cli._summary import OutcomeSummary, reason
from wechat_kf.cli.windows import ledger_options, open_ledger

__all__ = ["send", "send_many"]


@click.command()
@click.argument("openid")
@message_options
@common_options
@pass_settings
def send(settings: Settings, /, openid: str, **options: Any) -> None:
    """Send one message to the user OPENID.

    \b
    wechat-kf send o_user --text "您好，请问有什么可以帮您？"
    wechat-kf send o_user --menu-head "满意吗？" --menu-item 101=满意 --menu-item 102=不满意
    wechat-kf send o_user --miniprogram "订单,wxapp,pages/order?id=1,THUMB_ID" --kf-account a@b
    wechat-kf send o_user --json-file message.json
    """

    async def main() -> None:
        outbound = build_message(options)
        async with settings.client() as wx:
            await wx.message.send(
                openid,
                outbound.message,
                kf_account=outbound.kf_account,
                ai_generated=outbound.ai_generated,
            )
        msgtype = outbound.message.msgtype
        settings.output.success(f"{msgtype} sent to {openid}", openid=openid, msgtype=msgtype)

    run(settings, main)


@click.command("send-many")
@click.argument("recipients", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@message_options
@click.option(
    "--results",
    "results_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Record each recipient's outcome in this JSONL file as it happens; run the same "
    "command again with it to resume (recipients already sent are skipped). The file "
    "remembers the message: another message is refused unless --new-run.",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="Start a new run in the --results file, for another message or to send the same one "
    "again: its earlier lines are kept but no longer skip anyone.",
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Also send again to recipients whose earlier outcome is unknown (the message may "
    "have reached them).",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, 1000),
    default=_defaults.BULK_MAX_CONCURRENCY,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="At most this many sends per second (default: as fast as WeChat answers).",
)
@click.option(
    "--only-reachable",
    is_flag=True,
    help="Skip, without a request, the users the service-window ledger (--redis-url) knows "
    "are outside their window or out of messages; users it knows nothing about are sent to.",
)
@ledger_options
@common_options
@pass_settings
def send_many(
    settings: Settings,
    /,
    recipients: str,
    results_path: Path | None,
    new_run: bool,
    retry_unknown: bool,
    max_concurrency: int,
    rate: float | None,
    only_reachable: bool,
    redis_url: str | None,
    redis_prefix: str,
    **options: Any,
) -> None:
    """Send one message to every user in RECIPIENTS ("-": stdin).

    RECIPIENTS is a text file with one openid per line, or a CSV file: its "openid" column,
    else its first column (a first row that cannot be an openid is a header, never sent to).
    Each recipient gets the message at most once: with --results, a re-run after an
    interruption skips everyone already sent, and everyone whose outcome is unknown unless
    --retry-unknown. With --redis-url the sends keep your application's service-window ledger
    up to date, and --only-reachable skips the users it knows cannot be reached (a re-run tries
    them again). Exit status 4 when some recipients failed or are unknown.

    \b
    wechat-kf send-many users.txt --text "【通知】今晚 23:00 维护" --results notice.jsonl
    """
    out = settings.output

    async def main() -> int:
        if recipients == "-" and options.get("json_file") == "-":
            raise click.UsageError("RECIPIENTS and --json-file cannot both be read from stdin")
        if new_run and results_path is None:
            raise click.UsageError("--new-run starts a new run in a --results file: give one")
        if only_reachable and not redis_url:
            raise click.UsageError(
                "--only-reachable reads the service-window ledger in your application's Redis: "
                "give --redis-url (or WECHAT_REDIS_URL)"
            )
        outbound = build_message(options)
        results = None if results_path is None else _results_file(results_path)
        with click.open_file(recipients, encoding="utf-8-sig") as stream:
            listed = read_recipients(stream)
        source = listed.describe_source()
        if source is not None:
            out.note(f"{recipients}: {source}")
        summary = OutcomeSummary()
        summary.skip("repeated in the recipients file", listed.duplicates)
        summary.skip("no openid in the row (recipients file)", listed.missing)
        todo = listed.openids
        # Lock before reading: a concurrent run must not send to anyone we then see as unsent.
        with _locked(results):
            if results is not None:
                todo = _resume(
                    results, outbound, todo, summary, out, new_run=new_run, retry=retry_unknown
                )
            where = f"; outcomes go to {results.path}" if results is not None else ""
            out.note(f"{len(listed.openids)} recipients, {len(todo)} to send{where}")
            bulk = BulkRun()
            if todo:
                async with contextlib.AsyncExitStack() as stack:
                    if redis_url:
                        ledger = open_ledger(settings, redis_url, redis_prefix, secret_needed=True)
                        wx = await stack.enter_async_context(ledger)
                    else:
                        wx = await stack.enter_async_context(settings.client())
                    bulk = await _send(
                        settings,
                        wx,
                        todo,
                        outbound,
                        results,
                        summary,
                        rate,
                        max_concurrency,
                        skip_unreachable=only_reachable,
                    )
            if bulk.stopped_by is not None:
                out.error_line(f"stopped early: {describe_error(bulk.stopped_by)}")
            if out.json_mode:
                out.emit_json(
                    {
                        **summary.to_json(),
                        "results_file": None if results is None else str(results.path),
                        "interrupted": bulk.interrupted,
                        "stopped_by": None
                        if bulk.stopped_by is None
                        else describe_error(bulk.stopped_by),
                    }
                )
            else:
                summary.render(out, title=f"send-many: {outbound.message.msgtype}")
            if bulk.interrupted:
                if results is not None:
                    out.note("interrupted: run the same command again to send to the rest")
                return ExitCode.INTERRUPTED
            if bulk.stopped_by is not None:
                return exit_code_for(bulk.stopped_by)
            return ExitCode.OK if summary.complete else ExitCode.PARTIAL

    run(settings, main)


def _results_file(path: Path) -> ResultsFile:
    """The results file at ``path``, whose directory must exist (a typo creates nothing)."""
    directory = path.parent
    if not directory.is_dir():
        raise click.UsageError(
            f"--results {path}: the directory {directory} does not exist "
            f"(create it first: mkdir -p {directory})"
        )
    return ResultsFile(path)


def _resume(
    results: ResultsFile,
    outbound: Outbound,
    todo: list[str],
    summary: OutcomeSummary,
    out: Output,
    *,
    new_run: bool,
    retry: bool,
) -> list[str]:
    """The recipients still to send after what ``results`` recorded for this message.

    Checks (under the lock) that the file's latest run sent this very message, or starts a
    run in it. Raises ``click.UsageError`` when it recorded another message.
    """
    latest = results.latest()
    if results.unreadable:
        out.warning(f"{results.unreadable} unreadable line(s) in {results.path} ignored")
    header = RunHeader(fingerprint=outbound.fingerprint(), message=outbound.describe())
    recorded = results.run
    if new_run:
        results.start(header)
        return todo
    if recorded is None:
        if results.untagged:  # written before fingerprints existed: it cannot tell
            out.warning(
                f"{results.path} does not say which message it recorded (written by an older "
                "wechat-kf): assuming this one, so recipients it lists as sent are skipped"
            )
        results.start(attrs.evolve(header, continues=bool(results.untagged)))
    elif recorded.fingerprint != header.fingerprint:
        raise click.UsageError(_other_message(results.path, recorded, header))
    done = {o for o in todo if latest.get(o) == SENT}
    unsure = set() if retry else {o for o in todo if latest.get(o) in UNSURE}
    summary.skip("already sent (results file)", len(done))
    summary.skip("outcome unknown earlier, not sent again (see --retry-unknown)", len(unsure))
    return [o for o in todo if o not in done and o not in unsure]


def _other_message(path: Path, recorded: RunHeader, wanted: RunHeader) -> str:
    was = f" ({recorded.message})" if recorded.message else ""
    fresh = next(
        candidate
        for n in itertools.count(2)
        if not (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists()
    )
    return (
        f"{path} records a run of another message{was}, not this one ({wanted.message}): "
        "resuming from it would skip everyone who got the other message. Start a new run "
        f"with a new results file (--results {fresh}), or add --new-run to start it in "
        f"{path} (its earlier lines are kept but no longer skip anyone)"
    )


@contextlib.contextmanager
def _locked(results: ResultsFile | None) -> Iterator[None]:
    """Hold the results file's lock (and keep it open for appending) for the whole run."""
    with contextlib.ExitStack() as stack:
        if results is not None:
            try:
                stack.enter_context(results)
            except ResultsFileBusy:
                raise click.UsageError(
                    f"{results.path} is in use by another send-many run; wait for it to end"
                ) from None
        yield


async def _send(
    settings: Settings,
    wx: AsyncWeChat,
    todo: list[str],
    outbound: Outbound,
    results: ResultsFile | None,
    summary: OutcomeSummary,
    rate: float | None,
    max_concurrency: int,
    *,
    skip_unreachable: bool,
) -> BulkRun:
    out = settings.output

    def on_interrupt(first: bool) -> None:
        if first:
            out.warning("stopping: waiting for the sends in flight (Ctrl-C again to abandon them)")
        else:
            out.warning(
                "abandoning the sends in flight: they are recorded as unknown (their answers "
                f"get at most {_defaults.BULK_CANCEL_GRACE:g} s more)"
            )

    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(out.progress("sending", total=len(todo)))

        def on_outcome(outcome: Outcome) -> None:
            if results is not None:
                results.record(outcome)
            summary.add(outcome)
            bar.advance()

        bulk = await send_all(
            wx,
            todo,
            outbound,
            on_outcome=on_outcome,
            max_concurrency=max_concurrency,
            rate=rate,
            on_interrupt=on_interrupt,
            on_taken=None if results is None else results.pending,
            skip_unreachable=skip_unreachable,
        )
        summary.skip(reason(not_attempted(bulk.stopped_by)), bulk.not_attempted)
        return bulk
