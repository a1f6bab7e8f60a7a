"""One synchronous dispatch-and-send pass (``engage tick``): the same code the workers run, in one process.

Claiming is :mod:`engage.delivery.claim`; sending one message is :mod:`engage.delivery.send`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from engage import clock
from engage.delivery import spool
from engage.delivery.claim import claim_due, reap_stale
from engage.delivery.providers.base import ConfigurationError
from engage.delivery.send import Outcome, send_one
from engage.delivery.startup import check_startup


@contextlib.contextmanager
def _at(now: datetime | None) -> Iterator[None]:
    if now is None:
        yield
    else:
        with clock.frozen(now):
            yield


def tick(now: datetime | None = None) -> dict[str, int]:
    """One synchronous dispatch-and-send pass, as if at ``now`` (default: the real time).

    Re-enqueues stale rows (like the reaper), then claims every due row in
    batches until none is left and sends each through :func:`send_one`, the
    same code the workers run. Rows put back on the schedule during the pass
    (retries, quiet hours) are not due again before the pass's start time, so
    the pass ends. Returns counts: ``claimed``, one key per :class:`Outcome`
    value (``unknown`` and ``failed`` include rows the reaper flagged),
    ``requeued`` (stale rows sent again) and ``error`` (unexpected errors, logged; the
    row went back on the schedule). A ``ConfigurationError`` stops the pass.

    Raises :class:`engage.config.StartupRefused` before touching anything when these settings
    must not run (:func:`engage.delivery.startup.check_startup`), e.g. a future ``now`` with a
    real provider, or no secret key on PostgreSQL.
    """
    check_startup(now=now)
    counts = {"claimed": 0, **{o.value: 0 for o in Outcome}, "requeued": 0, "error": 0}
    with _at(now):
        cutoff = clock.utcnow()
        spool.replay()  # what was held while the database was down (a STOP) before any send
        reaped = reap_stale()
        for key in ("requeued", "unknown", "failed"):  # plus what the pass itself finds below
            counts[key] = reaped[key]
        batch = list(reaped["ids"])
        while True:
            for message_id in batch:
                try:
                    counts[send_one(message_id).outcome.value] += 1
                except ConfigurationError:
                    raise
                except Exception:  # send_one logged it and put the row back on the schedule; go on with the rest
                    counts["error"] += 1
            batch = claim_due(now=cutoff)
            if not batch:
                break
            counts["claimed"] += len(batch)
    return counts
