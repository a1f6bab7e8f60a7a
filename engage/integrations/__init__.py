"""Outgoing webhooks for a clinic's own systems: endpoints (:mod:`.endpoints`), what each event says
(:mod:`.payloads`) and signed delivery with retries (:mod:`.deliver`).

Events are written by :func:`engage.records.outgoing_webhooks.emit` where the change happens; this room
only registers endpoints and delivers. It may import records and the cross-cutting modules, never the
rooms beside it (delivery, sync) or above it.
"""
