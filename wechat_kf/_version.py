#: The version of this wechat_kf (PEP 440).
__version__ = "0.1.0"
