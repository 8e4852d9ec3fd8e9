"""Your own token store: three async methods, checked by the contract every store we ship passes."""

import asyncio
import contextlib
import io
import os
import sys

import pytest

from wechat_kf import AccessToken, AsyncWeChat
from wechat_kf.testing.store_contract import TokenStoreContract


class DictStore:
    """The smallest store: the three TokenStore methods (a dict stands for your backend)."""

    def __init__(self) -> None:
        self.data: dict[str, AccessToken] = {}

    async def get(self, appid: str) -> AccessToken | None:
        return self.data.get(appid)

    async def set(self, appid: str, token: AccessToken) -> None:
        self.data[appid] = token

    async def delete(self, appid: str) -> None:
        self.data.pop(appid, None)


class TestDictStore(TokenStoreContract):  # put this in your tests/test_store.py
    require_locking = False  # True: fail, not skip, without the LockingTokenStore layer

    @pytest.fixture
    def store(self) -> DictStore:  # may be an async fixture that connects and closes
        return DictStore()


class Outcomes:
    """A pytest plugin that notes each contract test's outcome (pytest's report goes nowhere)."""

    def __init__(self) -> None:
        self.tests: dict[str, set[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome == "skipped":
            name = report.nodeid.split("::")[-1].partition("[")[0]  # one per anyio backend
            self.tests.setdefault(report.outcome, set()).add(name)


async def use_it() -> None:
    store = DictStore()
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
        token_store=store,
    ) as wx:
        await wx.kf.list()
    print("stored for", list(store.data))


if __name__ == "__main__":
    asyncio.run(use_it())
    outcomes = Outcomes()
    # Usually you just run pytest on your test module. Here this very file is run by pytest,
    # in a process that imported the SDK already (hence --assert=plain).
    options = ["-q", "-p", "no:cacheprovider", "--assert=plain"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main([__file__, *options], plugins=[outcomes])
    for outcome, tests in sorted(outcomes.tests.items()):
        print(f"contract: {len(tests)} tests {outcome}")  # skipped: the optional layers
    sys.exit(code)
# Output:
# stored for ['wx0123456789abcdef']
# contract: 9 tests passed
# contract: 20 tests skipped
