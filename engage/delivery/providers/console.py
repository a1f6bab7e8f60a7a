"""Prints one line a message to stdout: for development and demos where files would be clutter.

Only the message id, the channel and the length are printed: never the
address or the body, since stdout ends up in logs.
"""

from __future__ import annotations

import sys
from typing import ClassVar, TextIO

from engage.config import Settings
from engage.delivery.providers.base import Accepted, OutgoingEmail, OutgoingSms


class ConsoleProvider:
    """Prints a summary line; returns ``Accepted("console-<id>")``."""

    name: ClassVar[str] = "console"

    def __init__(self, settings: Settings | None = None, stream: TextIO | None = None) -> None:
        self._stream = stream

    def _print(self, line: str) -> None:
        # sys.stdout is looked up per call so pytest's capsys and redirects see it.
        print(line, file=self._stream or sys.stdout, flush=True)

    def send_sms(self, msg: OutgoingSms) -> Accepted:
        self._print(f"[engage] sms message={msg.message_id} chars={len(msg.body)}")
        return Accepted(provider_message_id=f"console-{msg.message_id}")

    def send_email(self, msg: OutgoingEmail) -> Accepted:
        # File names are ours ("visit.ics"), never the patient's: safe to print.
        attached = f" attachments={','.join(a.filename for a in msg.attachments)}" if msg.attachments else ""
        self._print(
            f"[engage] email message={msg.message_id} subject_chars={len(msg.subject)} "
            f"text_chars={len(msg.text)} html_chars={len(msg.html)}{attached}"
        )
        return Accepted(provider_message_id=f"console-{msg.message_id}")
