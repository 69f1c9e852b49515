"""Access tokens and per-chatbot rate limits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fivegmc.maap.api import TokenCheck
from fivegmc.maap.ratelimit import RateLimiter
from fivegmc.maap.tokens import TokenBook


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_issue_and_check() -> None:
    clock = Clock()
    book = TokenBook(60, clock)
    token, expires = book.issue("botA")
    assert expires == 1060.0
    assert len(token) >= 40 and all(c.isalnum() or c in "-_" for c in token)
    assert book.check(token) == TokenCheck("botA")
    other, _ = book.issue("botB")
    assert other != token and book.check(other).bot_id == "botB"


def test_missing_invalid_expired() -> None:
    clock = Clock()
    book = TokenBook(60, clock)
    token, _ = book.issue("bot")
    assert book.check(None) == TokenCheck(None, "missing")
    assert book.check("") == TokenCheck(None, "missing")
    assert book.check(token + "x") == TokenCheck(None, "invalid")
    clock.t += 59.9
    assert book.check(token).bot_id == "bot"
    clock.t += 0.1
    assert book.check(token) == TokenCheck(None, "expired")


def test_replace_invalidates_earlier_tokens_of_that_bot_only() -> None:
    book = TokenBook(60, Clock())
    a1, _ = book.issue("a")
    a2, _ = book.issue("a")
    b1, _ = book.issue("b")
    assert book.check(a1).bot_id == "a" and book.check(a2).bot_id == "a"
    a3, _ = book.issue("a", replace=True)
    assert book.check(a1).problem == "invalid" and book.check(a2).problem == "invalid"
    assert book.check(a3).bot_id == "a" and book.check(b1).bot_id == "b"
    assert book.revoke_bot("a") == 1 and book.check(a3).problem == "invalid"


def test_memory_is_bounded() -> None:
    clock = Clock()
    book = TokenBook(10, clock, max_per_bot=5)
    first, _ = book.issue("bot")
    for _ in range(100):
        book.issue("bot")
    assert len(book) == 5 and book.check(first).problem == "invalid"
    for i in range(1000):  # tokens long expired are dropped as new ones are issued
        clock.t += 100
        book.issue(f"bot{i}")
    assert len(book) < 100


@given(st.text(max_size=200))
def test_hostile_tokens_are_just_invalid(s: str) -> None:
    book = TokenBook(60, Clock())
    book.issue("bot")
    assert book.check(s).bot_id is None


def test_rate_limit_burst_and_refill() -> None:
    rl = RateLimiter()
    now = 100.0
    assert [rl.allow("a", 5, now) for _ in range(6)] == [True] * 5 + [False]
    assert rl.allow("b", 5, now)  # other keys unaffected
    assert not rl.allow("a", 5, now + 0.1)
    assert rl.allow("a", 5, now + 0.2)  # 0.2 s x 5/s = one token
    assert sum(rl.allow("a", 5, now + 100) for _ in range(10)) == 5  # burst capped


def test_rate_limit_below_one_per_second() -> None:
    rl = RateLimiter()
    assert rl.allow("a", 0.5, 0.0)
    assert not rl.allow("a", 0.5, 1.0)
    assert rl.allow("a", 0.5, 2.0)
    assert not rl.allow("z", 0, 0.0)


@given(st.lists(st.floats(min_value=0, max_value=10), min_size=1, max_size=200),
       st.floats(min_value=0.1, max_value=1000))
def test_rate_limit_never_exceeds_burst_plus_rate(gaps: list[float], rate: float) -> None:
    rl = RateLimiter()
    now, allowed = 0.0, 0
    for g in gaps:
        now += g
        allowed += rl.allow("k", rate, now)
    assert allowed <= max(1.0, rate) + rate * now + 1e-6
