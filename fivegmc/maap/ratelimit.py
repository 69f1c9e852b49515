"""Per-chatbot send rate limits: one token bucket per key (issue 4: "per-chatbot rate limits
answer 429 … without affecting other chatbots").

The bucket holds at most one second's worth of sends (``rate_per_s``, at least 1) and refills
continuously. Time is passed in (sans-IO).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets keyed by chatbot id (or any string)."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str, rate_per_s: float, now: float) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty (answer 429)."""
        if rate_per_s <= 0:
            return False
        burst = max(1.0, rate_per_s)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(burst, now)
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(burst, bucket.tokens + elapsed * rate_per_s)
        bucket.at = max(bucket.at, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)
