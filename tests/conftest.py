"""Shared test configuration.

Every async test runs on asyncio and on trio. Tests that take the ``wx`` fixture run twice more:
against the fake WeChat in-process (an httpx transport) and on a real loopback port. Tests that
take the ``transport`` fixture run on every HTTP transport the SDK can create (on each async
library that transport runs on), and on a caller's own ``httpx.AsyncClient()`` (httpx's pool).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import httpx
import pytest
from hypothesis import settings

from wechat_kf import AsyncWeChat
from wechat_kf.testing import FakeServer, FakeWeChat

if TYPE_CHECKING:
    from tests.redis_server import RedisServer

pytest_plugins = ["wechat_kf.testing.pytest_plugin"]

#: No timing asserts, Hypothesis's included: its 200 ms deadline per example fails on a loaded
#: machine (a test that sets its own deadline keeps it).
settings.register_profile("wechat_kf", deadline=None)
settings.load_profile("wechat_kf")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


#: Every HTTP transport the SDK can create (``AsyncWeChat(transport=...)``) and the async
#: libraries it runs on. A new transport is one more entry here. (``"httpx"`` is another name
#: of ``"anyio"``: tests/test_transport.py checks that once.)
SDK_TRANSPORTS: Final[Mapping[str, tuple[str, ...]]] = {
    "anyio": ("asyncio", "trio"),
    "aiohttp": ("asyncio",),  # on trio the SDK falls back to anyio: nothing more to test
}

#: Not an SDK transport: the caller's own ``httpx.AsyncClient()`` (``http_client=``), which
#: sends with httpx's own pool (httpcore). The ``transport`` fixture runs on it too.
OWN_HTTPX: Final = "own-httpx"
TRANSPORTS: Final[Mapping[str, tuple[str, ...]]] = {
    **SDK_TRANSPORTS,
    OWN_HTTPX: ("asyncio", "trio"),
}


@pytest.fixture(params=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest, anyio_backend: str) -> str:
    """An SDK transport that runs on the test's async library, or ``OWN_HTTPX``."""
    name = str(request.param)
    if anyio_backend not in TRANSPORTS[name]:
        pytest.skip(f"the {name} transport runs on {', '.join(TRANSPORTS[name])} only")
    return name


class _OnOwnHTTPClient(AsyncWeChat):
    """An AsyncWeChat on a caller's own ``httpx.AsyncClient()``, which the test closes with it."""

    async def aclose(self) -> None:
        await super().aclose()
        await self._http.aclose()


def sdk_client(appid: str, secret: str | None, transport: str, **options: Any) -> AsyncWeChat:
    """``AsyncWeChat(appid, secret, transport=transport, **options)``; for ``OWN_HTTPX``, on a
    plain ``httpx.AsyncClient()`` of the caller's (closed with the AsyncWeChat)."""
    if transport == OWN_HTTPX:
        return _OnOwnHTTPClient(appid, secret, http_client=httpx.AsyncClient(), **options)
    return AsyncWeChat(appid, secret, transport=transport, **options)  # type: ignore[arg-type]


class SleepRecorder:
    """Stands in for ``anyio.sleep`` between retries: records, never waits.

    More than ``limit`` waits is a retry loop that never ends (a mutant of the pipeline's
    retry count, say): it fails at once instead of spinning until a timeout.
    """

    def __init__(self, limit: int = 1000) -> None:
        self.delays: list[float] = []
        self.limit = limit

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) > self.limit:
            raise AssertionError(f"more than {self.limit} retries: a retry loop never ends")


def loopback_client(
    fake: FakeWeChat, server: FakeServer, transport: str, **options: Any
) -> AsyncWeChat:
    """An AsyncWeChat on ``transport`` to the fake on loopback; retries never sleep."""
    options.setdefault("sleep", SleepRecorder())
    return sdk_client(fake.appid, fake.secret, transport, base_url=server.base_url, **options)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def fake() -> FakeWeChat:
    return FakeWeChat()


@pytest.fixture(params=["in-process", "loopback"])
def fake_mode(request: pytest.FixtureRequest, fake: FakeWeChat) -> Iterator[FakeServer | None]:
    if request.param == "in-process":
        yield None
    else:
        with fake.serve() as server:
            yield server


@pytest.fixture
async def wx(
    fake: FakeWeChat, fake_mode: FakeServer | None, sleeps: SleepRecorder
) -> AsyncIterator[AsyncWeChat]:
    """An AsyncWeChat on the fake, in-process or over loopback HTTP; retries never sleep."""
    if fake_mode is None:
        async with fake.client(sleep=sleeps) as client:
            yield client
    else:
        async with AsyncWeChat(
            fake.appid, fake.secret, base_url=fake_mode.base_url, sleep=sleeps
        ) as client:
            yield client


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for the tests of one module (started here, stopped after them)."""
    from tests.redis_server import running_redis

    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own: the tests of a module share one redis-server."""
    return f"test{uuid.uuid4().hex[:8]}:"
