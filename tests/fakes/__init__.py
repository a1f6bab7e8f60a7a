"""Fakes at the network boundary: servers the real SDKs talk to over real HTTP.

Import from the module itself (``tests.fakes.provider_server``), so that
``python -m tests.fakes.provider_server`` runs it without a second copy.
"""
