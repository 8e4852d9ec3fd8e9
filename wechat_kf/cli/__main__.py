"""``python -m wechat_kf.cli``: the same as the ``wechat-kf`` command."""

from wechat_kf.cli import main

main()
