"""Records: what a clinic keeps, and the only way it is written.

The SQLAlchemy models, the Alembic migrations that build them, validation of
everything staff type (phones, time zones, emails, wall times), the clinic's
quiet-hours setting, creating clinics, patients and plans, and the audit trail.
Imports only the cross-cutting modules (``config``, ``clock``, ``errors``, ``db``);
anything that re-plans messages after a change lives above, in :mod:`engage.schedule`.
"""

# The length limits of staff-typed text are checked on every flush (a Session event), wherever the
# records are written from; importing the package registers the check.
from engage.records import limits as _limits  # noqa: E402,F401

# Writes to scores and visits mark the stored episode facts computed from them stale (a Session event too).
from engage.records import stale_episodes as _stale_episodes  # noqa: E402,F401
