"""Passkeys (WebAuthn, through Duo Labs' ``webauthn``): register one, and sign in with one.

The relying party is the host of ``ENGAGE_PUBLIC_URL`` (its RP ID) and the origin is that URL's
scheme, host and port: browsers only offer WebAuthn in a secure context (https, or ``localhost``
in development; an IP address such as 127.0.0.1 is never a valid RP ID). Passkeys are registered
as discoverable credentials, so one can be the whole sign-in: :func:`authentication_options`
without a staff member asks the browser for any engage passkey, and then the authenticator must
verify its user (PIN or biometric), which makes the passkey two factors by itself. After a
password it is a second factor and user verification is only preferred.

The challenge travels to the browser and back in a signed, short-lived cookie (the web layer's
job); these functions take it as bytes. A credential's signature counter must go up (a cloned
authenticator would repeat it), except for authenticators that always report 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import webauthn
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from engage.clock import utcnow
from engage.config import get_settings
from engage.errors import InvalidInput
from engage.records.audit import AuditAction, audit
from engage.records.models import FactorKind, StaffFactor, StaffUser

RP_NAME = "engage"


class PasskeyRefused(Exception):
    """The passkey's answer did not verify, or it belongs to nobody (or to someone else)."""


@dataclass(frozen=True)
class Ceremony:
    """Options for ``navigator.credentials`` (JSON text) and the challenge to check the answer against."""

    options_json: str
    challenge: bytes


def relying_party() -> tuple[str, str]:
    """(RP ID, origin) from ``ENGAGE_PUBLIC_URL``."""
    url = urlsplit(get_settings().public_url)
    return url.hostname or "localhost", f"{url.scheme}://{url.netloc}"


def _descriptors(factors: list[StaffFactor]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(f.credential_id))
        for f in factors
        if f.credential_id
    ]


def passkeys_of(session: Session, staff_id: int) -> list[StaffFactor]:
    return list(
        session.scalars(
            select(StaffFactor)
            .where(StaffFactor.staff_user_id == staff_id, StaffFactor.kind == FactorKind.PASSKEY)
            .order_by(StaffFactor.id)
        )
    )


def registration_options(session: Session, staff: StaffUser) -> Ceremony:
    """Options to create a new passkey for ``staff`` (their existing ones excluded)."""
    rp_id, _ = relying_party()
    options = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name=RP_NAME,
        user_id=f"engage-staff-{staff.id}".encode(),
        user_name=staff.email,
        user_display_name=staff.name or staff.email,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(passkeys_of(session, staff.id)),
    )
    return Ceremony(webauthn.options_to_json(options), options.challenge)


def register(
    session: Session, staff: StaffUser, credential: str | dict[str, Any], challenge: bytes, label: str, *, actor: str
) -> StaffFactor:
    """Verify the browser's new credential and keep it as a passkey factor; raises ``InvalidInput``."""
    rp_id, origin = relying_party()
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id, expected_origin=origin
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"the passkey could not be registered ({type(exc).__name__})") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if session.scalar(select(StaffFactor.id).where(StaffFactor.credential_id == credential_id)):
        raise InvalidInput("that passkey is registered already")
    now = utcnow()
    factor = StaffFactor(
        staff_user_id=staff.id,
        kind=FactorKind.PASSKEY,
        label=(label.replace("\x00", "").strip() or "Passkey")[:100],
        credential_id=credential_id,
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        confirmed_at=now,
    )
    session.add(factor)
    session.flush()
    audit(
        session,
        clinic_id=staff.clinic_id,
        actor=actor,
        action=AuditAction.STAFF_MFA_ENROLL,
        subject_type="staff_user",
        subject_id=staff.id,
        kind=FactorKind.PASSKEY.value,
    )
    return factor


def authentication_options(session: Session, staff_id: int | None) -> Ceremony:
    """Options to sign in with a passkey: ``staff_id``'s (second factor) or any discoverable one (passwordless)."""
    rp_id, _ = relying_party()
    options = webauthn.generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=_descriptors(passkeys_of(session, staff_id)) if staff_id is not None else None,
        user_verification=UserVerificationRequirement.PREFERRED
        if staff_id is not None
        else UserVerificationRequirement.REQUIRED,
    )
    return Ceremony(webauthn.options_to_json(options), options.challenge)


def authenticate(
    session: Session, credential: str | dict[str, Any], challenge: bytes, staff_id: int | None
) -> StaffUser:
    """The active staff member whose passkey signed ``challenge``; raises ``PasskeyRefused``.

    ``staff_id`` given: the passkey must be theirs (second factor after a password). None: any
    staff member's, and the authenticator must have verified its user (passwordless sign-in).
    """
    rp_id, origin = relying_party()
    try:
        raw = json.loads(credential) if isinstance(credential, str) else credential
        credential_id = str(raw["id"])
    except (ValueError, KeyError, TypeError):
        raise PasskeyRefused("the passkey's answer is malformed") from None
    if len(credential_id) > 400 or "\x00" in credential_id:  # no stored id looks like that
        raise PasskeyRefused("this passkey is not registered with engage")
    factor = session.scalar(
        select(StaffFactor).where(StaffFactor.credential_id == credential_id, StaffFactor.kind == FactorKind.PASSKEY)
    )
    if factor is None or factor.public_key is None or (staff_id is not None and factor.staff_user_id != staff_id):
        raise PasskeyRefused("this passkey is not registered with engage")
    try:
        verified = webauthn.verify_authentication_response(
            credential=raw,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=webauthn.base64url_to_bytes(factor.public_key),
            credential_current_sign_count=factor.sign_count,
            require_user_verification=staff_id is None,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyRefused(f"the passkey's answer did not verify ({type(exc).__name__})") from None
    counted = [StaffFactor.id == factor.id]
    if verified.new_sign_count:  # authenticators without a counter always say 0
        counted.append(StaffFactor.sign_count < verified.new_sign_count)
    moved = session.execute(
        update(StaffFactor)
        .where(*counted)
        .values(sign_count=verified.new_sign_count, used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0) != 1:
        raise PasskeyRefused("the passkey's counter went backwards (a copied authenticator?)")
    staff = session.get(StaffUser, factor.staff_user_id)
    if staff is None or not staff.active:
        raise PasskeyRefused("this passkey is not registered with engage")
    return staff
