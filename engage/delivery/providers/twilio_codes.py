"""Twilio error codes engage acts on, apart from the SDK so that knowing them costs no import of it."""

from __future__ import annotations

# Error codes where retrying is pointless and the dispatcher has a follow-up:
# 21610 records an SMS opt-out, 21211/21614 mark the phone invalid.
UNSUBSCRIBED = "21610"
INVALID_NUMBER = "21211"
NOT_MOBILE = "21614"
#: "Authenticate": the account SID / auth token pair was refused.
AUTHENTICATION_FAILED = "20003"
