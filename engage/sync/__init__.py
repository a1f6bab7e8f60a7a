"""Sync: the practice-management system stays the source of truth.

Upserts by the clinic's own ids (external ids), CSV import and FHIR R4 Bundles. May
import :mod:`engage.schedule` and below; never delivery, web or cli.
"""
