"""Counting sign-in attempts per account and per address, atomically.

An attempt is *reserved* before the password (or second factor) is checked: one upsert per
key adds 1 to the key's count in the current window and returns the new count, in one
statement, so 40 parallel guesses get 40 different counts and only the first
``settings.login_max_failures`` are checked. A success or a refusal-without-check gives its
reservation back (:func:`release`); a failure keeps it. A window starts at a key's first
attempt and lasts ``settings.login_window_minutes``; the next attempt after it starts afresh.

:func:`reserve` commits the caller's session, so other processes see the count before this
one spends time on argon2.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.config import get_settings
from engage.records.models import LoginCounter


def reserve(session: Session, keys: Iterable[str]) -> bool:
    """Count one attempt for each key and commit; True when every key is within the limit (go ahead and check).

    When False, the attempt was given back already: the caller refuses it without checking.
    """
    settings = get_settings()
    now = utcnow()
    cutoff = now - timedelta(minutes=settings.login_window_minutes)
    wanted = sorted(set(keys))  # one order everywhere: two keys locked in opposite orders would deadlock
    # Old windows of other keys go, skipping rows another sign-in holds (waiting on them could deadlock).
    stale = (
        select(LoginCounter.key)
        .where(LoginCounter.window_start < cutoff, LoginCounter.key.notin_(wanted))
        .with_for_update(skip_locked=True)
    )
    session.execute(delete(LoginCounter).where(LoginCounter.key.in_(stale)))
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    counts = []
    for key in wanted:
        insert = dialect.insert(LoginCounter).values(key=key, window_start=now, count=1)
        expired = LoginCounter.window_start < cutoff
        upsert = insert.on_conflict_do_update(
            index_elements=[LoginCounter.key],
            set_={
                "count": case((expired, 1), else_=LoginCounter.count + 1),
                "window_start": case((expired, now), else_=LoginCounter.window_start),
            },
        ).returning(LoginCounter.count)
        counts.append(int(session.execute(upsert).scalar_one()))
    session.commit()
    if all(count <= settings.login_max_failures for count in counts):
        return True
    release(session, wanted)
    session.commit()
    return False


def release(session: Session, keys: Iterable[str]) -> None:
    """Give back one reserved attempt for each key (in the caller's transaction)."""
    session.execute(
        update(LoginCounter)
        .where(LoginCounter.key.in_(sorted(set(keys))), LoginCounter.count > 0)
        .values(count=LoginCounter.count - 1)
    )
