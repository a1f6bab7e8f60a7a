"""Operations: what an operator asks of a running engage (status, metrics, data retention).

Sits above :mod:`engage.delivery` (it reads the outbox and the heartbeat) and
below the entry points (``engage status``, ``/metrics``, the workers' beat jobs).
"""
