"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``, ``demo``, ``bench``.

``nox -s mutate`` (mutation testing of the core, under an hour) is not a default session, nor CI.
"""

from __future__ import annotations

import json

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
    """mypy --strict on the package; pyright --verifytypes: every public name typed, documented."""
    _install(session, "test")
    session.install("mypy>=1.11", "pyright>=1.1.380")
    session.run("mypy", "wechat_kf")
    session.run("mypy", "docs/examples")  # the documentation's programs are typed too
    command = ("pyright", "--verifytypes", "wechat_kf", "--ignoreexternal")
    report = session.run(*command, "--outputjson", silent=True, success_codes=[0, 1])
    completeness = json.loads(str(report))["typeCompleteness"]
    undocumented = (
        completeness["missingFunctionDocStringCount"] + completeness["missingClassDocStringCount"]
    )
    if completeness["completenessScore"] < 1 or undocumented:
        session.run(*command, success_codes=[0, 1])  # the readable report
        session.error(
            f"pyright --verifytypes: {completeness['completenessScore']:.1%} typed, "
            f"{undocumented} public name(s) without a docstring (want 100% and 0)"
        )


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built strictly: a broken link, reference or any warning fails."""
    _install(session, "docs")
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


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


@nox.session
def mutate(session: nox.Session) -> None:
    """Mutation testing of the core modules with mutmut (slow; not in CI): see CONTRIBUTING.md.

    ``nox -s mutate`` runs every module of ``mutation/__main__.py``'s ``TARGETS``;
    ``nox -s mutate -- _retry callback._crypto`` runs some; ``-- --list`` shows the mapping.
    """
    _install(session, "test")
    session.install("mutmut==3.8.*")
    session.run("python", "-m", "mutation", *session.posargs)
