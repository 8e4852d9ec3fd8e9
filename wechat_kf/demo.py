"""``python -m wechat_kf.demo``: the same as ``wechat-kf demo`` (needs the ``cli`` extra).

A whole customer-service day against the embedded fake WeChat, with no credentials and no
network: see :mod:`wechat_kf.cli.demo`. Options are passed on (``python -m wechat_kf.demo
--users 500 --json``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``wechat-kf demo`` with ``argv`` (default: the process arguments); exits."""
    from wechat_kf.cli import main as cli_main

    cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
