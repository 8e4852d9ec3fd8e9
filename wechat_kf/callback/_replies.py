"""Passive replies: what your server answers to a push, in the same HTTP exchange.

:meth:`CallbackHandler.reply` turns one of these into the response body, adding the envelope
(``ToUserName``/``FromUserName`` swapped from the push, ``CreateTime``) and encrypting it when the
push was encrypted.
"""

from __future__ import annotations

import re
from typing import ClassVar, Final

import attrs

from wechat_kf._errors import ValidationError
from wechat_kf.callback._xml import XMLValue, is_xml_text

__all__ = ["SUCCESS", "Reply", "Success", "TextReply", "TransferCustomerService"]

#: The body that acknowledges a push without answering it; it also stops WeChat's retries.
SUCCESS: Final = b"success"

# prefix (1-10 of [A-Za-z0-9_]) @ the account's WeChat ID (1-30 visible characters)
_KF_ACCOUNT: Final = re.compile(r"[A-Za-z0-9_]{1,10}@[^\s<>&@]{1,30}")


@attrs.frozen(kw_only=True)
class Reply:
    """Base of every passive reply."""

    MSG_TYPE: ClassVar[str] = ""

    def xml_fields(self) -> dict[str, XMLValue]:
        """The reply's own elements after the envelope (``MsgType`` first)."""
        return {"MsgType": self.MSG_TYPE}


def _check_kf_account(_instance: object, _attribute: object, value: str | None) -> None:
    if value is not None and not _KF_ACCOUNT.fullmatch(value):
        raise ValidationError(
            "kf_account",
            "must be prefix@wechat_id: a prefix of 1-10 letters, digits or _, "
            "then @ and the account's WeChat ID (at most 30 characters)",
            value,
        )


@attrs.frozen(kw_only=True)
class TransferCustomerService(Reply):
    """Hand the user's message to customer service (``transfer_customer_service``).

    With ``kf_account`` the message goes to that agent (``TransInfo/KfAccount``), otherwise to
    any available one. Answers user messages only: WeChat does not transfer events.
    """

    MSG_TYPE: ClassVar[str] = "transfer_customer_service"

    kf_account: str | None = attrs.field(default=None, validator=_check_kf_account)

    def xml_fields(self) -> dict[str, XMLValue]:
        """``MsgType`` and, for a chosen agent, ``TransInfo/KfAccount``."""
        fields = super().xml_fields()
        if self.kf_account is not None:
            fields["TransInfo"] = {"KfAccount": self.kf_account}
        return fields


def _check_content(_instance: object, _attribute: object, value: str) -> None:
    if not value:
        raise ValidationError("content", "must not be empty", value)
    if not is_xml_text(value):
        raise ValidationError(
            "content", "must not hold control characters other than tab and newlines", value
        )


@attrs.frozen(kw_only=True)
class TextReply(Reply):
    """Answer with a text message."""

    MSG_TYPE: ClassVar[str] = "text"

    content: str = attrs.field(validator=_check_content)

    def xml_fields(self) -> dict[str, XMLValue]:
        """``MsgType`` and ``Content``."""
        return {**super().xml_fields(), "Content": self.content}


@attrs.frozen(kw_only=True)
class Success(Reply):
    """Acknowledge without answering: the body is ``success``, never encrypted.

    WeChat stops retrying and shows the user nothing; answer later with the customer-service
    send API if needed.
    """
