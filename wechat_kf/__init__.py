"""wechat_kf: an async, typed SDK for the WeChat Official Account customer-service API."""

from wechat_kf._errors import *  # noqa: F403
from wechat_kf._errors import __all__ as _errors_all
from wechat_kf._version import __version__

__all__ = ["__version__", *_errors_all]
