"""Your own duplicate store: three async methods, checked by the contract our two stores pass."""

import asyncio
import contextlib
import io
import sys
import time
from collections.abc import Callable

import pytest

from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    DuplicateEntry,
    Incoming,
    Reply,
)
from wechat_kf.testing import VirtualClock
from wechat_kf.testing.duplicate_store_contract import DuplicateStoreContract


class DictDuplicateStore:
    """One process, unbounded: a sketch of the contract (a dict stands for your backend)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.entries: dict[str, tuple[float, DuplicateEntry]] = {}  # key -> (expiry, entry)

    async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
        held = self.entries.get(key)
        if held is not None and held[0] > self.clock():
            return held[1]  # in progress, or done with its reply
        self.entries[key] = (self.clock() + ttl, DuplicateEntry("in_progress"))
        return None  # claimed: this worker handles the push

    async def mark_done(self, key: str, reply: bytes, ttl: float) -> None:
        self.entries[key] = (self.clock() + ttl, DuplicateEntry("done", reply))

    async def forget(self, key: str) -> None:
        self.entries.pop(key, None)


class TestDictDuplicateStore(DuplicateStoreContract):  # put this in your tests/
    @pytest.fixture
    def clock(self) -> VirtualClock:  # the expiry tests move this fake clock: nothing sleeps
        return VirtualClock()

    @pytest.fixture
    def store(self, clock: VirtualClock) -> DictDuplicateStore:
        return DictDuplicateStore(clock=clock)


class Outcomes:
    """A pytest plugin that notes each contract test's outcome (pytest's report goes nowhere)."""

    def __init__(self) -> None:
        self.tests: dict[str, set[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome == "skipped":
            name = report.nodeid.split("::")[-1].partition("[")[0]  # one per anyio backend
            self.tests.setdefault(report.outcome, set()).add(name)


async def on_message(incoming: Incoming) -> Reply | None:
    return None


async def use_it() -> None:
    handler = CallbackHandler(token="my_token", appid="wx1234567890abcdef")
    endpoint = CallbackEndpoint(handler, on_message, deduplicator=DictDuplicateStore())
    print("the endpoint deduplicates with", type(endpoint.deduplicator.store).__name__)


if __name__ == "__main__":
    asyncio.run(use_it())
    outcomes = Outcomes()
    # Usually you just run pytest on your test module. Here this very file is run by pytest,
    # in a process that imported the SDK already (hence --assert=plain).
    options = ["-q", "-p", "no:cacheprovider", "--assert=plain"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main([__file__, *options], plugins=[outcomes])
    for outcome, tests in sorted(outcomes.tests.items()):
        print(f"contract: {len(tests)} tests {outcome}")
    sys.exit(code)
# Output:
# the endpoint deduplicates with DictDuplicateStore
# contract: 8 tests passed
