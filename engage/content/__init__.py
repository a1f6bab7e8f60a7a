"""Content: what a message says.

Sandboxed Jinja2 rendering, the context a template sees, SMS text rules (GSM-7,
segments, condition words), signed patient links, and ``engage templates check``.
May import :mod:`engage.records` and the cross-cutting modules only.
"""
