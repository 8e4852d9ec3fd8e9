"""``python -m mutation [module ...]``: mutmut over the core modules, each against its tests.

See "Mutation testing" in CONTRIBUTING.md. Each module runs in its own copy of the project under
``build/mutation/<module>/`` (mutmut's ``mutants/`` directory lives there: ``mutmut results``,
``mutmut show NAME`` and ``mutmut browse`` work in it afterwards), asyncio only, and the run ends
with a table of mutants, survivors and scores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Final, NamedTuple

ROOT: Final = Path(__file__).resolve().parent.parent
BUILD: Final = ROOT / "build" / "mutation"


class Target(NamedTuple):
    """The tests of one module: files, and a ``-k`` expression narrowing them (or ``""``)."""

    tests: tuple[str, ...]
    select: str = ""


#: Redis stores: the standalone server. The Cluster and Sentinel runs test the same code through
#: other clients, and start three servers per mutant.
_ONE_REDIS: Final = "not Cluster and not Sentinel"

#: Each core module and the test files that exercise it. mutmut runs these files once to learn
#: which test calls which function, then runs only those tests against each mutant: keep the
#: list to the tests written for the module (an end-to-end file that calls everything makes
#: every mutant slow). A new core module is one more entry.
TARGETS: Final[dict[str, Target]] = {
    "wechat_kf/_retry.py": Target(("tests/test_retry.py", "tests/test_pipeline.py")),
    "wechat_kf/_http11.py": Target(("tests/test_http11.py",)),
    "wechat_kf/_connection.py": Target(("tests/test_anyio_transport.py",)),
    "wechat_kf/_pool.py": Target(("tests/test_anyio_transport.py",)),
    "wechat_kf/_transport.py": Target(
        ("tests/test_transport.py", "tests/test_bulk.py", "tests/test_faults.py"),
        "transport or pool or cookie",
    ),
    "wechat_kf/_redaction.py": Target(("tests/test_secrets.py",)),
    "wechat_kf/_validation.py": Target(
        ("tests/test_validation.py", "tests/test_models.py", "tests/test_kf.py")
    ),
    "wechat_kf/_tokens.py": Target(
        (
            "tests/test_tokens.py",
            "tests/test_token_manager.py",
            "tests/test_token_store_contract.py",
        ),
        "not Redis",
    ),
    "wechat_kf/_redis_tokens.py": Target(
        ("tests/test_redis_tokens.py", "tests/test_token_store_contract.py"), _ONE_REDIS
    ),
    "wechat_kf/_redis.py": Target(
        (
            "tests/test_redis_store.py",
            "tests/test_redis_tokens.py",
            "tests/callback/test_callback_redis_dedupe.py",
        ),
        _ONE_REDIS,
    ),
    "wechat_kf/_stores.py": Target(
        ("tests/test_stores.py", "tests/callback/test_callback_dedupe.py")
    ),
    "wechat_kf/callback/_crypto.py": Target(("tests/callback/test_callback_crypto.py",)),
    "wechat_kf/callback/_handler.py": Target(
        (
            "tests/callback/test_callback_handler.py",
            "tests/callback/test_callback_crypto.py",
            "tests/callback/test_callback_replies.py",
            "tests/callback/test_callback_xml.py",
        )
    ),
    "wechat_kf/callback/_dedupe.py": Target(
        ("tests/callback/test_callback_dedupe.py", "tests/callback/test_callback_endpoint.py")
    ),
    "wechat_kf/callback/_xml.py": Target(("tests/callback/test_callback_xml.py",)),
    "wechat_kf/_media_ids.py": Target(
        ("tests/test_media_ids.py", "tests/test_media.py", "tests/test_media_store_contract.py"),
        "not Redis",
    ),
    "wechat_kf/media.py": Target(("tests/test_media.py", "tests/test_media_send.py")),
    "wechat_kf/_files.py": Target(("tests/test_files.py",)),
    "wechat_kf/_redis_media.py": Target(
        ("tests/test_redis_media.py", "tests/test_media_store_contract.py"), _ONE_REDIS
    ),
    "wechat_kf/_window_rules.py": Target(
        ("tests/test_windows.py", "tests/test_windows_property.py")
    ),
    "wechat_kf/_window_ledger.py": Target(
        ("tests/test_window_ledger.py", "tests/test_windows.py", "tests/test_windows_property.py")
    ),
    "wechat_kf/_window_store.py": Target(
        (
            "tests/test_window_store.py",
            "tests/test_window_store_contract.py",
            "tests/test_window_ledger.py",
            "tests/test_windows.py",
        ),
        "not Redis",
    ),
    "wechat_kf/_redis_windows.py": Target(
        ("tests/test_redis_windows.py", "tests/test_window_store_contract.py"), _ONE_REDIS
    ),
    "wechat_kf/callback/_endpoint.py": Target(
        (
            "tests/callback/test_callback_endpoint.py",
            "tests/callback/test_callback_bots.py",
            "tests/callback/test_callback_http.py",
            "tests/callback/test_callback_windows.py",
        )
    ),
    "wechat_kf/callback/_delivery.py": Target(("tests/callback/test_callback_bots.py",)),
    "wechat_kf/callback/_split.py": Target(("tests/callback/test_callback_split.py",)),
    "wechat_kf/_pipeline.py": Target(
        ("tests/test_pipeline.py", "tests/test_decoding.py", "tests/test_faults.py")
    ),
    "wechat_kf/bulk.py": Target(
        ("tests/test_bulk.py", "tests/test_media_send.py", "tests/test_windows.py"), "not 10000"
    ),
    "wechat_kf/_rate.py": Target(("tests/test_rate.py", "tests/test_bulk.py"), "rate"),
    "wechat_kf/windows.py": Target(("tests/test_windows.py",)),
    # The 30,000-record memory test proves flat memory, not a result: it would run per mutant.
    "wechat_kf/records.py": Target(("tests/test_records.py",), "not flat_memory"),
}

#: pytest options of every run: asyncio only (trio runs the same lines of the core twice).
PYTEST_ARGS: Final = ("-p", "no:cacheprovider")
SELECT: Final = "not trio"

#: mutmut's wall-time limit per mutant, as a multiple of its tests' time (mutmut's default: 15).
TIMEOUT_MULTIPLIER: Final = 5.0

#: The project files each module's copy needs.
COPIED: Final = ("wechat_kf", "tests", "pyproject.toml")


def _slug(module: str) -> str:
    return module.removeprefix("wechat_kf/").removesuffix(".py").replace("/", ".")


def _select(names: list[str]) -> list[str]:
    if not names:
        return list(TARGETS)
    chosen = []
    for name in names:
        matches = [m for m in TARGETS if name in (m, _slug(m), Path(m).stem)]
        if not matches:
            raise SystemExit(f"unknown module {name!r}; known: {', '.join(map(_slug, TARGETS))}")
        chosen += matches
    return chosen


def _prepare(module: str) -> Path:
    """A fresh copy of the project whose pyproject.toml tells mutmut what to do."""
    workdir = BUILD / _slug(module)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, workdir / name, ignore=ignore)
        else:
            shutil.copy2(source, workdir / name)
    target = TARGETS[module]
    tests = [t for t in target.tests if (ROOT / t).exists()]
    select = f"{SELECT} and ({target.select})" if target.select else SELECT
    section = {
        "source_paths": ["wechat_kf"],
        "only_mutate": [module],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": [*PYTEST_ARGS, "-k", select],
        # A mutant that hangs is stopped after (its tests' time + 1 s) x this, not mutmut's
        # x15: the hung ones were most of a module's run. x5 leaves room for a loaded machine.
        "timeout_multiplier": TIMEOUT_MULTIPLIER,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(val)}" for key, val in section.items()]
    with (workdir / "pyproject.toml").open("a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    return workdir


#: mutmut's command, installed next to this Python.
MUTMUT: Final = str(Path(sys.executable).with_name("mutmut"))


def _mutmut(workdir: Path, *args: str, log: Path) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("w", encoding="utf-8") as out:
        subprocess.run([MUTMUT, *args], cwd=workdir, env=env, check=True, stdout=out, stderr=out)


def _survivors(workdir: Path) -> list[str]:
    listing = subprocess.run(
        [MUTMUT, "results"], cwd=workdir, capture_output=True, text=True, check=True
    )
    rows = (line.strip().rpartition(": ") for line in listing.stdout.splitlines())
    return [name for name, _, status in rows if status == "survived"]  # not timeouts: killed


def run(module: str, max_children: int) -> dict[str, object]:
    """Mutate ``module``; its counts, score and surviving mutants' names."""
    workdir = _prepare(module)
    started = time.monotonic()
    print(f"== {module}: mutmut in {workdir.relative_to(ROOT)}", flush=True)
    _mutmut(workdir, "run", "--max-children", str(max_children), log=workdir / "mutmut.log")
    _mutmut(workdir, "export-cicd-stats", log=workdir / "export.log")
    stats = json.loads((workdir / "mutants" / "mutmut-cicd-stats.json").read_text("utf-8"))
    killed = stats["killed"] + stats["timeout"]
    checked = stats["total"] - stats["skipped"] - stats["check_was_interrupted_by_user"]
    row: dict[str, object] = {
        "module": module,
        "mutants": stats["total"],
        "killed": killed,
        "survived": checked - killed,
        "no_tests": stats["no_tests"],
        "score": killed / checked if checked else 1.0,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "survivors": _survivors(workdir),
    }
    print(
        f"   {row['mutants']} mutants, {row['survived']} survived "
        f"({row['no_tests']} without a test), score {row['score']:.1%}, "
        f"{row['minutes']} min",
        flush=True,
    )
    return row


def table(rows: list[dict[str, object]]) -> str:
    """The results as a Markdown table."""
    head = ["| module | mutants | survived | score | minutes |", "|---|---:|---:|---:|---:|"]
    return "\n".join(
        head
        + [
            f"| `{str(row['module']).removeprefix('wechat_kf/')}` | {row['mutants']} | "
            f"{row['survived']} | {row['score']:.1%} | {row['minutes']} |"
            for row in rows
        ]
    )


def main() -> None:
    """Parse the command line and run each selected module in turn."""
    parser = argparse.ArgumentParser(prog="python -m mutation", description=__doc__)
    parser.add_argument("modules", nargs="*", help="e.g. _retry callback._crypto (default: all)")
    parser.add_argument(
        "--max-children",
        type=int,
        default=2,
        help="mutants tested at once (default 2: a 2-core machine shared with others)",
    )
    parser.add_argument("--list", action="store_true", help="print the module -> tests mapping")
    args = parser.parse_args()
    modules = _select(args.modules)
    if args.list:
        for module in modules:
            target = TARGETS[module]
            print(
                f"{module}: {' '.join(target.tests)}"
                + (f" -k {target.select!r}" * bool(target.select))
            )
        return
    rows = [run(module, args.max_children) for module in modules]
    report = table(rows)
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / "results.md").write_text(report + "\n", encoding="utf-8")
    (BUILD / "results.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"\n{report}\n\nSurvivors: build/mutation/results.json; details: mutmut show NAME")


if __name__ == "__main__":
    main()
