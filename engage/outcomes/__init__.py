"""Clinic-wide outcomes: episodes (an enrollment with a baseline pain score), their figures, and exports.

``statistics`` and ``episodes`` are pure (functions of their inputs); ``summary`` reads the records and
applies them; ``export`` writes CSV and FHIR R4 ``Observation`` resources.
"""
