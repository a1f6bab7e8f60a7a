"""Schedule: which message goes out when, and keeping the outbox in step with every change.

Sequences (YAML), the PURE planner and window arithmetic, reconcile (plan versus
outbox rows), enrolments, and the appointment and quiet-hour changes that re-plan.
May import :mod:`engage.conversation` (consent decides reachability), :mod:`engage.content`,
:mod:`engage.records` and the cross-cutting modules; never delivery, web or cli.
"""
