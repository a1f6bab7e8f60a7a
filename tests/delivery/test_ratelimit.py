"""The send rate limit: one bucket in Redis shared by every worker, or one per process without Redis."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis

from engage.config import get_settings
from engage.delivery.ratelimit import (
    LocalTokenBucket,
    RateLimited,
    RedisTokenBucket,
    acquire,
    acquire_many,
    get_limiter,
    limiter_redis_url,
    reset_limiters,
    uses_redis,
)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_bucket_spaces_reservations_one_interval_apart() -> None:
    clock = FakeMonotonic()
    bucket = LocalTokenBucket(clock)
    waits = [bucket.reserve("sms:twilio", rate=4) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    clock.now += 10  # idle time refills the bucket (up to its capacity of one)
    assert bucket.reserve("sms:twilio", rate=4) == 0.0
    assert bucket.reserve("sms:twilio", rate=4) == pytest.approx(0.25)
    assert bucket.reserve("email:sendgrid", rate=4) == 0.0  # buckets are per key


def test_local_bucket_burst_lets_that_many_through_at_once() -> None:
    bucket = LocalTokenBucket(FakeMonotonic())
    waits = [bucket.reserve("k", rate=10, burst=3) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_beyond_max_wait_nothing_is_reserved() -> None:
    bucket = LocalTokenBucket(FakeMonotonic())
    for _ in range(3):
        bucket.reserve("k", rate=1, max_wait=5)
    with pytest.raises(RateLimited) as info:
        bucket.reserve("k", rate=1, max_wait=1.5)
    assert info.value.wait == pytest.approx(3.0)
    assert bucket.reserve("k", rate=1, max_wait=5) == pytest.approx(3.0)  # the refused call took no slot


def test_a_zero_rate_means_unlimited() -> None:
    bucket = LocalTokenBucket(FakeMonotonic())
    assert [bucket.reserve("k", rate=0) for _ in range(100)] == [0.0] * 100


def test_redis_is_used_only_when_configured(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.delenv("ENGAGE_REDIS_URL", raising=False)
    get_settings.cache_clear()
    assert not uses_redis(get_settings())  # the embedded default: no Redis anywhere
    reset_limiters()
    assert isinstance(get_limiter(), LocalTokenBucket)

    monkeypatch.setenv("ENGAGE_BROKER_URL", "redis://127.0.0.1:6379/3")
    get_settings.cache_clear()
    assert limiter_redis_url(get_settings()) == "redis://127.0.0.1:6379/3"  # the workers' broker is shared anyway

    monkeypatch.delenv("ENGAGE_BROKER_URL")
    monkeypatch.setenv("ENGAGE_REDIS_URL", redis_url)
    get_settings.cache_clear()
    assert limiter_redis_url(get_settings()) == redis_url  # an explicit setting wins
    reset_limiters()
    assert isinstance(get_limiter(), RedisTokenBucket)
    reset_limiters()


def test_redis_bucket_n_acquisitions_at_rate_r_take_at_least_n_over_r(redis_url: str) -> None:
    # Two "workers" with their own connections draw from one bucket.
    rate, per_worker = 20.0, 10
    limiters = [RedisTokenBucket(redis.Redis.from_url(redis_url)) for _ in range(2)]
    stamps: list[float] = []
    lock = threading.Lock()

    def worker(limiter: RedisTokenBucket) -> None:
        for _ in range(per_worker):
            acquire(limiter, "sms:twilio", rate)
            with lock:
                stamps.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(limiter,)) for limiter in limiters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = 2 * per_worker
    assert len(stamps) == total
    # The first slot is free; the other N-1 come one interval apart.
    assert max(stamps) - started >= (total - 1) / rate * 0.95


def test_redis_bucket_is_shared_by_separate_processes(redis_url: str) -> None:
    rate, per_process, processes = 25.0, 10, 3
    script = textwrap.dedent(f"""
        import redis, time
        from engage.delivery.ratelimit import RedisTokenBucket, acquire
        limiter = RedisTokenBucket(redis.Redis.from_url({redis_url!r}))
        stamps = []
        for _ in range({per_process}):
            acquire(limiter, "email:sendgrid", {rate})
            stamps.append(time.time())
        print(",".join(map(repr, stamps)))
    """)
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    stamps = sorted(float(x) for out in outputs for x in out.strip().split(","))
    assert len(stamps) == processes * per_process
    # Wherever the processes overlapped, any six consecutive sends still spanned about five intervals; three
    # independent buckets would have sent three at a time (six in two intervals). Windows, not single gaps,
    # so a process descheduled between acquiring and stamping on a busy machine does not fail the test.
    window = 6
    spans = [stamps[i + window - 1] - stamps[i] for i in range(len(stamps) - window + 1)]
    assert min(spans) >= (window - 1) / rate * 0.7
    assert stamps[-1] - stamps[0] >= (len(stamps) - 1) / rate * 0.95


def test_redis_bucket_refuses_beyond_max_wait_without_reserving(redis_url: str) -> None:
    limiter = RedisTokenBucket(redis.Redis.from_url(redis_url))
    for _ in range(5):
        limiter.reserve("k", rate=1, max_wait=10)
    with pytest.raises(RateLimited) as info:
        limiter.reserve("k", rate=1, max_wait=2)
    assert 4.0 < info.value.wait <= 5.0
    assert 4.0 < limiter.reserve("k", rate=1, max_wait=10) <= 5.0


def test_local_bucket_reserves_many_slots_in_one_step_up_to_max_wait() -> None:
    bucket = LocalTokenBucket(FakeMonotonic())
    # Rate 4: slots at 0, 0.25, 0.5, ...; within 0.6 s only the first three.
    assert bucket.reserve_many("k", rate=4, count=5, max_wait=0.6) == pytest.approx((3, 0.5, 0.75))
    assert bucket.reserve("k", rate=4) == pytest.approx(0.75)  # the refused two took no slot
    assert bucket.reserve_many("k", rate=4, count=2, max_wait=0.5) == pytest.approx((0, 0.0, 1.0))
    assert bucket.reserve_many("k", rate=0, count=7) == (7, 0.0, 0.0)


def test_redis_bucket_reserves_many_slots_in_one_step_like_one_at_a_time(redis_url: str) -> None:
    limiter = RedisTokenBucket(redis.Redis.from_url(redis_url))
    got, last, following = limiter.reserve_many("many", rate=2, count=10, max_wait=2.2)
    assert got == 5  # slots at 0, 0.5, 1, 1.5 and 2 s
    assert 1.9 < last <= 2.0 and 2.4 < following <= 2.5
    assert 2.4 < limiter.reserve("many", rate=2, max_wait=10) <= 2.5  # the next one queues behind them
    with pytest.raises(RateLimited):
        limiter.reserve("many", rate=2, max_wait=1)


def test_acquire_many_sleeps_until_the_last_slot_it_reserved() -> None:
    started = time.monotonic()
    got, following = acquire_many(LocalTokenBucket(), "k", rate=20, count=4, max_wait=0.12)
    assert got == 3 and time.monotonic() - started >= 0.09  # slots at 0, 50 and 100 ms
    assert following == pytest.approx(0.05, abs=0.01)  # the fourth's slot: 50 ms after the last one
