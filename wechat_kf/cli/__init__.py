"""``wechat-kf``: the command line of wechat_kf (``pip install 'wechat_kf[cli]'``).

``wechat-kf demo`` runs a whole customer-service day against the embedded fake WeChat; the other
commands (``agents``, ``send``, ``send-many``, ``sessions``, ``records``) work against WeChat
with the credentials in ``WECHAT_APPID``/``WECHAT_SECRET``. Run ``wechat-kf --help``.

click and rich are imported only here, so ``import wechat_kf`` never needs them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Final

__all__ = ["INSTALL_HINT", "main"]

#: What ``wechat-kf`` prints when the ``cli`` extra is not installed.
INSTALL_HINT: Final = (
    "wechat-kf needs the command-line extra (click, rich): pip install 'wechat_kf[cli]'"
)
_CLI_DEPENDENCIES: Final = ("click", "rich")


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``wechat-kf`` with ``argv`` (default: the process arguments); exits the process."""
    try:
        from wechat_kf.cli._app import cli
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in _CLI_DEPENDENCIES:
            raise
        sys.stderr.write(INSTALL_HINT + "\n")
        raise SystemExit(2) from None
    cli.main(args=list(argv) if argv is not None else None, prog_name="wechat-kf")
