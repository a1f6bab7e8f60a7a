"""Delivery: getting a planned message to the provider exactly once.

Claiming due rows, the send-time checks, outbox row writes, the shared rate limit,
provider status mapping, and the providers themselves (``providers/``).
May import :mod:`engage.schedule`, :mod:`engage.conversation`, :mod:`engage.content`,
:mod:`engage.records` and the cross-cutting modules; never web, cli or workers.
"""
