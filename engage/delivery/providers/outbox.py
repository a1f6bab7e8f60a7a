"""The default with no credentials: every message becomes a file in ``settings.outbox_dir``.

Email is written as ``email-<id>.eml`` (a real MIME message with a text and an
HTML part and any attachments, openable in any mail client); SMS as ``sms-<id>.json`` with the
segment count a carrier would bill. The name carries our message id, so a
re-send overwrites its own file instead of adding a second one, and each file
is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from pathlib import Path
from typing import ClassVar

from engage import clock
from engage.config import Settings
from engage.content.sms_text import segment_info
from engage.delivery.providers.base import Accepted, OutgoingEmail, OutgoingSms


class OutboxProvider:
    """Writes SMS and email to files. Returns ``Accepted("outbox-<id>")``; OSError if the folder is unwritable."""

    name: ClassVar[str] = "outbox"

    def __init__(self, settings: Settings) -> None:
        self.directory = Path(settings.outbox_dir)
        self._default_sender = settings.twilio_from_number or settings.twilio_messaging_service_sid

    def sms_path(self, message_id: int) -> Path:
        return self.directory / f"sms-{message_id}.json"

    def email_path(self, message_id: int) -> Path:
        return self.directory / f"email-{message_id}.eml"

    def send_sms(self, msg: OutgoingSms) -> Accepted:
        encoding, segments, units = segment_info(msg.body)
        record = {
            "message_id": msg.message_id,
            "to": msg.to,
            "from": msg.sender or self._default_sender,
            "body": msg.body,
            "encoding": encoding,
            "segments": segments,
            "units": units,
            "status_callback": msg.status_callback,
            "written_at": clock.utcnow().isoformat(),
        }
        data = json.dumps(record, ensure_ascii=False, indent=2) + "\n"
        _write_atomically(self.sms_path(msg.message_id), data.encode("utf-8"))
        return Accepted(provider_message_id=f"outbox-{msg.message_id}")

    def send_email(self, msg: OutgoingEmail) -> Accepted:
        _write_atomically(self.email_path(msg.message_id), bytes(build_email(msg)))
        return Accepted(provider_message_id=f"outbox-{msg.message_id}")


def build_email(msg: OutgoingEmail) -> EmailMessage:
    """``msg`` as a multipart/alternative MIME message (text first, HTML preferred), with its extra headers."""
    # LF line ends (a file on disk, not SMTP). RFC 5322's 998-character line limit, not the 78 the policy
    # folds at: folding a long List-Unsubscribe URL turns it into an encoded word, which no client reads.
    email = EmailMessage(policy=default_policy.clone(max_line_length=998))
    email["From"] = Address(display_name=msg.from_name, addr_spec=msg.from_email)
    email["To"] = msg.to
    email["Subject"] = msg.subject
    email["Date"] = format_datetime(clock.utcnow())
    domain = msg.from_email.rpartition("@")[2] or "engage.invalid"
    # Stable per message: a re-send is the same message, not a new one.
    email["Message-ID"] = f"<engage-{msg.message_id}@{domain}>"
    email["X-Engage-Message-Id"] = str(msg.message_id)
    for key, value in msg.headers.items():
        email[key] = value
    if msg.categories:
        email["X-Engage-Categories"] = ", ".join(msg.categories)
    email.set_content(msg.text)
    email.add_alternative(msg.html, subtype="html")
    for attachment in msg.attachments:  # the first one turns the message into multipart/mixed
        maintype, _, subtype = attachment.content_type.partition("/")
        email.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype or "octet-stream", filename=attachment.filename
        )
    return email


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
