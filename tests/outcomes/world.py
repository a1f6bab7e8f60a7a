"""The hand-worked fixture the Outcomes tests share: 12 enrollments, 10 of them episodes, 6 responders.

Two practitioners. Every plan's first session was 20 days ago, then weekly (4 sessions); every baseline 2 days
before it; every follow-up 14 days and 2 hours after the first session (so 3 sessions had begun).

=====  ============  ========  ======  ====================================================
who    baseline      latest    change  counts as
=====  ============  ========  ======  ====================================================
Lee    8             4         -4      2 points, 30 %, both
Lee    8             4         -4      both
Lee    8             3         -5      both
Lee    8             5         -3      both (3/8 = 37.5 %)
Lee    8             6         -2      2 points only (25 %)
Lee    8             10        +2      worsened
Lee    (none) x2                       enrolled, no episode
Diaz   6             3         -3      both
Diaz   6             4         -2      both (33 %)
Diaz   6             5         -1      neither
Diaz   6             6          0      neither
=====  ============  ========  ======  ====================================================

Clinic: enrolled 12, episodes 10, all with a follow-up; both 6 -> 60 %, Wilson 95 % [0.3127, 0.8318];
2 points 7, 30 % 6; worsened 1; median change of -5,-4,-4,-3,-3,-2,-2,-1,0,2 = -2.5; median baseline 8
(six 8s and four 6s: the 5th and 6th values are 8); Kaplan-Meier: 6 events and 4 censored, all at day 14.08
and session 3: S = 4/10 -> median 14.08 days, 3 sessions. Diaz has 4 episodes: below 5, pooled as "other".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.conversation.measures import record_score
from engage.records.models import Enrollment, EnrollmentStatus
from engage.records.plans import create_plan
from engage.records.practitioners import add_practitioner
from tests import seed

LEE = [(8, 4), (8, 4), (8, 3), (8, 5), (8, 6), (8, 10), (None, None), (None, None)]
DIAZ = [(6, 3), (6, 4), (6, 5), (6, 6)]
FOLLOW_UP = timedelta(days=14, hours=2)
WILSON_6_OF_10 = [0.3127, 0.8318]


@dataclass
class World:
    clinic_id: int
    lee: int
    diaz: int
    patients: dict[str, list[int]] = field(default_factory=dict)  # practitioner -> patient ids, in table order


def build(session: Session) -> World:
    clinic = seed.clinic(session)
    lee = add_practitioner(session, clinic.id, name="Dr. Lee", external_id="DR-1", actor="test")
    diaz = add_practitioner(session, clinic.id, name="Dr. Diaz", external_id="DR-2", actor="test")
    world = World(clinic.id, lee.id, diaz.id)
    first = utcnow() - timedelta(days=20)
    number = 0
    for who, rows in (("lee", LEE), ("diaz", DIAZ)):
        world.patients[who] = []
        for baseline, latest in rows:
            number += 1
            patient = seed.patient(session, clinic.id, first=f"P{number}", phone=f"+1415555{number:04d}")
            plan = create_plan(
                session,
                patient_id=patient.id,
                condition="sciatica",
                modality="dry needling",
                first=first,
                sessions=4,
                every=timedelta(days=7),
                allow_past=True,
                practitioner_id=lee.id if who == "lee" else diaz.id,
                actor="test",
            )
            session.add(
                Enrollment(
                    patient_id=patient.id, plan_id=plan.id, sequence_key=seed.SEQUENCE, status=EnrollmentStatus.ACTIVE
                )
            )
            if baseline is not None:
                record_score(session, patient.id, baseline, actor="test", at=first - timedelta(days=2))
                record_score(session, patient.id, latest, actor="test", at=first + FOLLOW_UP)
            world.patients[who].append(patient.id)
    session.flush()
    return world
