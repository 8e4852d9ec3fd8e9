"""Tests of the receiving side, ``wechat_kf.callback``."""
