"""Access tokens for the chatbot APIs (GSMA OAuth2 bearer tokens, CT/CU ``accessToken``).

A token is an opaque random string (``secrets.token_urlsafe``) bound to one chatbot with an
expiry. Checking only says whose it is; the dialect compares that with the chatbot in the path
and answers 403 on a mismatch (issue 4 security rule). ``replace=True`` implements the CT/CU
rule "a new token invalidates the previous one" (protocols.md §10).

Memory is bounded: expired tokens are pruned as new ones are issued, and each chatbot keeps at
most ``max_per_bot`` live tokens (the oldest go first).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .api import TokenCheck

#: Expired tokens remembered (to answer "expired" rather than "invalid") at most this long.
_EXPIRED_GRACE_S = 3600.0


@dataclass(frozen=True, slots=True)
class _Grant:
    bot_id: str
    expires_at: float


class TokenBook:
    """Issued tokens in memory (:class:`fivegmc.maap.api.Tokens`)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time, *,
                 max_per_bot: int = 64) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        if max_per_bot < 1:
            raise ValueError("max_per_bot must be >= 1")
        self._ttl = ttl_s
        self._clock = clock
        self._max_per_bot = max_per_bot
        # token -> grant, in issue order (so expired ones are at the front)
        self._grants: OrderedDict[str, _Grant] = OrderedDict()
        # bot -> its tokens in issue order
        self._by_bot: dict[str, OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._grants)

    def issue(self, bot_id: str, *, replace: bool = False) -> tuple[str, float]:
        now = self._clock()
        self._prune(now)
        mine = self._by_bot.setdefault(bot_id, OrderedDict())
        if replace:
            for old in mine:
                self._grants.pop(old, None)
            mine.clear()
        while len(mine) >= self._max_per_bot:
            old, _ = mine.popitem(last=False)
            self._grants.pop(old, None)
        token = secrets.token_urlsafe(32)
        expires_at = now + self._ttl
        self._grants[token] = _Grant(bot_id, expires_at)
        mine[token] = None
        return token, expires_at

    def check(self, token: str | None) -> TokenCheck:
        if not token:
            return TokenCheck(None, "missing")
        grant = self._grants.get(token)
        if grant is None:
            return TokenCheck(None, "invalid")
        if self._clock() >= grant.expires_at:
            return TokenCheck(None, "expired")
        return TokenCheck(grant.bot_id)

    def revoke_bot(self, bot_id: str) -> int:
        """Invalidate every token of ``bot_id`` (e.g. its credentials changed); how many."""
        mine = self._by_bot.pop(bot_id, OrderedDict())
        for token in mine:
            self._grants.pop(token, None)
        return len(mine)

    def _prune(self, now: float) -> None:
        # Tokens are issued with one ttl, so issue order is expiry order.
        while self._grants:
            token, grant = next(iter(self._grants.items()))
            if grant.expires_at + _EXPIRED_GRACE_S > now:
                break
            del self._grants[token]
            mine = self._by_bot.get(grant.bot_id)
            if mine is not None:
                mine.pop(token, None)
                if not mine:
                    del self._by_bot[grant.bot_id]
