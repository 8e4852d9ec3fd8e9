"""The exit codes of ``wechat-kf`` and the one function that picks one for an exception."""

from __future__ import annotations

import enum

from wechat_kf import (
    APIError,
    MalformedResponseError,
    StoreError,
    TokenError,
    TransportError,
    ValidationError,
)

__all__ = ["ExitCode", "exit_code_for", "leaf_exceptions"]


class ExitCode(enum.IntEnum):
    """What a ``wechat-kf`` exit status means (scripts branch on these)."""

    #: Everything worked.
    OK = 0
    #: WeChat refused the request (an ``errcode``; the error line names it and its ``rid``).
    API_ERROR = 1
    #: Bad usage: a wrong option, invalid input (``ValidationError``), an unreadable file.
    USAGE = 2
    #: No usable answer: network, timeout, HTTP 5xx, a malformed body, no access token, a store
    #: (Redis) that failed.
    TRANSPORT = 3
    #: ``send-many`` finished but some recipients failed or their outcome is unknown.
    PARTIAL = 4
    #: A bug in wechat-kf itself (run again with ``--debug`` and report the traceback).
    INTERNAL = 70
    #: Interrupted (Ctrl-C). ``send-many`` leaves a results file a re-run resumes from.
    INTERRUPTED = 130
    #: The reader of stdout went away (``| head``): stopped quietly, as Unix tools do when
    #: SIGPIPE ends them (128 + 13).
    BROKEN_PIPE = 141


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``[exc]`` itself."""
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple) and inner and all(isinstance(e, BaseException) for e in inner):
        return [leaf for each in inner for leaf in leaf_exceptions(each)]
    return [exc]


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code an exception (after unwrapping groups) stands for."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, APIError):
        return ExitCode.API_ERROR
    if isinstance(exc, ValidationError | OSError):
        return ExitCode.USAGE
    if isinstance(exc, TransportError | MalformedResponseError | TokenError | StoreError):
        return ExitCode.TRANSPORT
    return ExitCode.INTERNAL
