"""Read-only mode: a client without a secret only reads the tokens a token service stores."""

import asyncio
import os

from wechat_kf import AsyncWeChat, MemoryTokenStore, TokenUnavailableError

APPID = os.environ["WECHAT_APPID"]
BASE_URL = os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com")


async def main() -> None:
    store = MemoryTokenStore()  # in production: a RedisTokenStore both sides share
    async with AsyncWeChat(APPID, token_store=store, base_url=BASE_URL) as reader:  # no secret
        try:
            await reader.kf.list()
        except TokenUnavailableError as exc:  # the store holds no token yet
            print("TokenUnavailableError:", "read-only" in str(exc))

        # The token service: the one place that holds the secret and refreshes the token
        async with AsyncWeChat(
            APPID, os.environ["WECHAT_SECRET"], token_store=store, base_url=BASE_URL
        ) as service:
            await service.access_token()

        print(len(await reader.kf.list()), "agents, read with the service's token")


asyncio.run(main())
# Output:
# TokenUnavailableError: True
# 3 agents, read with the service's token
