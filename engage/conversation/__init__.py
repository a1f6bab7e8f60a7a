"""Conversation: what patients tell us back.

Consent (append-only events; current consent is the newest), understanding
inbound replies, and pain-score outcomes. May import :mod:`engage.content`,
:mod:`engage.records` and the cross-cutting modules only.
"""
