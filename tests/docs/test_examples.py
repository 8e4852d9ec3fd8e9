"""Every example of the documentation runs as a program and prints what its page says.

An example is one file, ``docs/examples/NAME.py``, run as ``python docs/examples/NAME.py`` from
the repository root, exactly as a reader would, against a fresh fake WeChat seeded with
``wechat-kf fake-server --seed demo``'s world and served on a loopback port: the environment
holds ``WECHAT_BASE_URL``, ``WECHAT_APPID`` and ``WECHAT_SECRET`` (what the fake-server's export
line sets), and ``REDIS_URL`` (a real redis-server started for it) when the example reads it.
An example may also start a fake of its own and ignore them.

The file ends with what it prints, as comments after a ``# Output:`` line; the page shows the
file whole, output included. Adding an example is adding that one file (and including it in a
page: ``tests/docs/test_site.py`` checks that every example is).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import REDIS_SERVER, no_redis, running_redis
from wechat_kf.cli._seeds import seed

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))
OUTPUT_MARKER = "# Output:"


def promised_output(source: str) -> str:
    """What the example says it prints: the comment lines after its ``# Output:`` line."""
    _, marker, tail = source.partition("\n" + OUTPUT_MARKER + "\n")
    assert marker, f"no {OUTPUT_MARKER!r} block at the end"
    lines = tail.splitlines()
    assert all(line == "#" or line.startswith("# ") for line in lines), (
        "the output block must be comment lines to the end of the file"
    )
    return "".join(line[2:] + "\n" for line in lines)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if REDIS_SERVER is None:
        no_redis()
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_prints_what_it_says(example: Path, request: pytest.FixtureRequest) -> None:
    source = example.read_text(encoding="utf-8")
    expected = promised_output(source)
    env = {name: value for name, value in os.environ.items() if not name.startswith("WECHAT_")}
    if "REDIS_URL" in source:
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    fake = seed("demo")
    with fake.serve() as server:
        env.update(
            WECHAT_BASE_URL=server.base_url,
            WECHAT_APPID=fake.appid,
            WECHAT_SECRET=fake.secret,
            PYTHONIOENCODING="utf-8",
            COLUMNS="100",
            BOT_THINKING_SECONDS="0.6",  # fastapi_bot.py's model thinks 8 s: under one here
            BOT_REPLY_DEADLINE="0.2",
        )
        done = subprocess.run(
            [sys.executable, str(example.relative_to(ROOT))],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, f"{example.name} failed:\n{done.stderr}"
    assert done.stdout == expected, (
        f"{example.name} printed something else; its output block would be:\n"
        + "".join(f"# {line}".rstrip() + "\n" for line in done.stdout.splitlines())
    )
