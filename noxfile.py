"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``demo``, ``bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True


def _install(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, on asyncio and trio (real HTTP on loopback, real Redis)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    _install(session, "test")
    session.install("mypy>=1.11")
    session.run("mypy", "wechat_kf")


@nox.session
def demo(session: nox.Session) -> None:
    """Run ``wechat-kf demo``: a customer-service day against the embedded fake WeChat."""
    _install(session, "cli", "aiohttp")
    session.run("wechat-kf", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks measured side by side in one run (see benchmarks/README.md)."""
    _install(session, "aiohttp", "cli")
    session.install("wechatpy", "matplotlib")
    session.run("python", "-m", "benchmarks", *session.posargs)
