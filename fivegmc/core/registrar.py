"""The registrar's binding logic (RFC 3261 §10.3), with expiry over time passed in.

Policy only: bindings live in memory here; durable and shared stores come with the storage
protocol (issue 3). A binding remembers the flow its REGISTER arrived on, so requests for the
AoR can be sent back over the same TCP connection (the way a P-CSCF keeps a UE's flow).
"""

from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass, field

from ..config import RegistrarConfig
from ..sip.errors import is_digits
from ..sip.uri import NameAddr, SipUri, Uri

_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
#: Contact parameters that describe the binding rather than the UE's capabilities.
_BINDING_PARAMS = frozenset(("expires", "q", "+sip.instance", "reg-id", "pub-gruu", "temp-gruu"))
#: RFC 3840 §9 base feature tags (without the leading '+' that extension tags carry).
_BASE_TAGS = frozenset((
    "audio", "automata", "class", "duplex", "data", "control", "mobility", "description",
    "events", "priority", "methods", "schemes", "application", "video", "language", "type",
    "isfocus", "actor", "text", "extensions",
))


@dataclass(frozen=True, slots=True)
class Flow:
    """Where a request came from: the transport and the peer's address."""

    transport: str  # "udp", "tcp" or "tls"
    host: str
    port: int


@dataclass(slots=True)
class Binding:
    aor: str
    contact: NameAddr
    contact_key: str
    expires_at: float
    call_id: str
    cseq: int
    flow: Flow
    q: float = 1.0
    feature_tags: tuple[tuple[str, str | None], ...] = ()
    instance: str | None = None
    registered_at: float = 0.0

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    """What to answer: a status, and for 200 the AoR's current bindings (§10.3 step 8)."""

    status: int
    reason: str | None = None
    bindings: tuple[Binding, ...] = ()
    min_expires: int | None = None  # for 423 Interval Too Brief
    changed: bool = False


def feature_tags(contact: NameAddr) -> tuple[tuple[str, str | None], ...]:
    """The capability feature tags a Contact carries (RFC 3840 §9, RCS ICSI/IARI tags)."""
    out: list[tuple[str, str | None]] = []
    for name, value in contact.params:
        low = name.lower()
        if low in _BINDING_PARAMS:
            continue
        if low.startswith("+") or low in _BASE_TAGS:
            out.append((name, value))
    return tuple(out)


def contact_key(uri: Uri) -> str:
    """Compare contacts by URI (RFC 3261 §10.3 step 7, §19.1.4, simplified: host case-folded)."""
    if isinstance(uri, SipUri):
        user = uri.user or ""
        port = uri.port or (5061 if uri.scheme == "sips" else 5060)
        transport = (uri.param("transport") or "").lower()
        return f"{uri.scheme}:{user}@{uri.host.lower()}:{port};{transport}"
    return str(uri)


@dataclass(slots=True)
class Registrar:
    """Bindings per AoR with §10.3 semantics; expiry is driven by :meth:`expire`."""

    config: RegistrarConfig
    #: Bindings per AoR as a tuple (half the memory of a list at one binding per AoR).
    _bindings: dict[str, tuple[Binding, ...]] = field(default_factory=dict)
    #: Expiry in one-second buckets: second (rounded down) → AoRs with a binding expiring in
    #: it, and a heap of the bucket seconds. One list slot per binding instead of a heap tuple
    #: (~64 bytes less per registration, a memory target of issue 3).
    _buckets: dict[int, list[str]] = field(default_factory=dict)
    _bucket_heap: list[int] = field(default_factory=list)
    #: Identical Contact parameter tuples (the same client's feature tags) shared by every
    #: binding that has them: at a million registrations they are most of the memory.
    _shared_params: dict[tuple[tuple[str, str | None], ...],
                         tuple[tuple[str, str | None], ...]] = field(default_factory=dict)
    _count: int = 0

    @property
    def binding_count(self) -> int:
        return self._count

    @property
    def aor_count(self) -> int:
        return len(self._bindings)

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of ``aor``, highest q first (RFC 3261 §16.6 target order), and among
        equal q the most recently registered first."""
        found = self._bindings.get(aor)
        if not found:
            return []
        live = [b for b in found if b.expires_at > now]
        if len(live) > 1:
            live.sort(key=lambda b: (-b.q, -b.registered_at))
        return live

    def all_aors(self) -> list[str]:
        return list(self._bindings)

    def register(
        self,
        aor: str,
        contacts: list[NameAddr] | None,
        *,
        expires_header: int | None,
        call_id: str,
        cseq: int,
        flow: Flow,
        now: float,
    ) -> RegisterOutcome:
        """Apply one REGISTER. ``contacts`` None is the ``*`` wildcard (§10.3 step 6)."""
        cfg = self.config
        current = [b for b in self._bindings.get(aor, ()) if b.expires_at > now]
        if contacts is None:
            if expires_header != 0:
                return RegisterOutcome(400, "Wildcard Contact requires Expires: 0")
            for b in current:
                if b.call_id == call_id and cseq <= b.cseq:
                    return RegisterOutcome(400, "Out-of-order CSeq for this Call-ID")
            changed = bool(current)
            self._set(aor, [])
            return RegisterOutcome(200, bindings=(), changed=changed)
        if not contacts:  # a query: answer the current bindings (§10.3 step 8)
            return RegisterOutcome(200, bindings=tuple(current))

        # Validate every contact before changing anything: the REGISTER is atomic.
        updates: list[tuple[NameAddr, str, int, float]] = []
        for contact in contacts:
            expires_param = contact.param("expires")
            if expires_param is not None:
                if not is_digits(expires_param):
                    return RegisterOutcome(400, "Bad expires parameter")
                expires = int(expires_param)
            elif expires_header is not None:
                expires = expires_header
            else:
                expires = cfg.default_expires
            if expires != 0 and expires < cfg.min_expires:
                return RegisterOutcome(423, min_expires=cfg.min_expires)
            expires = min(expires, cfg.max_expires)
            q_text = contact.param("q")
            # qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )  (RFC 3261 §25.1)
            if q_text and not _QVALUE.fullmatch(q_text):
                return RegisterOutcome(400, "Bad q parameter")
            q = float(q_text) if q_text else 1.0
            if not 0.0 <= q <= 1.0:
                return RegisterOutcome(400, "Bad q parameter")
            updates.append((contact, contact_key(contact.uri), expires, q))

        by_key = {b.contact_key: b for b in current}
        for _contact, key, _expires, _q in updates:
            existing = by_key.get(key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                return RegisterOutcome(400, "Out-of-order CSeq for this Call-ID")

        changed = False
        for contact, key, expires, q in updates:
            if expires == 0:
                if by_key.pop(key, None) is not None:
                    changed = True
                continue
            instance = contact.param("+sip.instance")
            contact.params = self._share(contact.params)
            by_key[key] = Binding(
                aor=aor, contact=contact, contact_key=key, expires_at=now + expires,
                call_id=call_id, cseq=cseq, flow=flow, q=q,
                feature_tags=self._share(feature_tags(contact)),
                instance=instance, registered_at=now,
            )
            changed = True
        if len(by_key) > cfg.max_contacts_per_aor:
            return RegisterOutcome(403, "Too many registered contacts")
        result = list(by_key.values())
        self._set(aor, result)
        for b in result:
            if b.registered_at == now and b.call_id == call_id and b.cseq == cseq:
                self._schedule(b.expires_at, aor)  # new/refreshed
        return RegisterOutcome(200, bindings=tuple(result), changed=changed)

    def restore(self, binding: Binding) -> None:
        """Put back a binding loaded from storage (at start-up); no §10.3 checks."""
        binding.contact.params = self._share(binding.contact.params)
        binding.feature_tags = self._share(binding.feature_tags)
        found = [b for b in self._bindings.get(binding.aor, ())
                 if b.contact_key != binding.contact_key]
        self._set(binding.aor, [*found, binding])
        self._schedule(binding.expires_at, binding.aor)

    def replace(self, aor: str, bindings: list[Binding]) -> None:
        """Set every binding of ``aor`` at once, as another process sharing the store saved
        them (DESIGN.md §8: a local copy kept current by change notices); [] removes it."""
        for b in bindings:
            b.contact.params = self._share(b.contact.params)
            b.feature_tags = self._share(b.feature_tags)
            self._schedule(b.expires_at, b.aor)
        self._set(aor, list(bindings))

    def _share(
        self, params: tuple[tuple[str, str | None], ...]
    ) -> tuple[tuple[str, str | None], ...]:
        if len(self._shared_params) > 100_000:
            self._shared_params.clear()  # bounded: a flood of distinct params must not grow it
        return self._shared_params.setdefault(params, params)

    def _set(self, aor: str, bindings: list[Binding]) -> None:
        old = self._bindings.get(aor)
        self._count += len(bindings) - (len(old) if old else 0)
        if bindings:
            self._bindings[aor] = tuple(bindings)
        elif old is not None:
            del self._bindings[aor]

    def _schedule(self, expires_at: float, aor: str) -> None:
        if expires_at == math.inf:
            return
        second = math.floor(expires_at)
        bucket = self._buckets.get(second)
        if bucket is None:
            self._buckets[second] = bucket = []
            heapq.heappush(self._bucket_heap, second)
        bucket.append(aor)

    def next_expiry(self) -> float | None:
        return float(self._bucket_heap[0]) if self._bucket_heap else None

    def expire(self, now: float) -> list[Binding]:
        """Remove bindings whose time is up; returns what was removed."""
        removed: list[Binding] = []
        not_yet: list[Binding] = []  # in a due bucket, but later within its second
        heap = self._bucket_heap
        while heap and heap[0] <= now:
            second = heapq.heappop(heap)
            for aor in self._buckets.pop(second, ()):
                found = self._bindings.get(aor)
                if not found:
                    continue
                keep = []
                for b in found:
                    if b.expires_at <= now:
                        removed.append(b)
                    else:
                        keep.append(b)
                        if math.floor(b.expires_at) == second:
                            not_yet.append(b)
                if len(keep) != len(found):
                    self._set(aor, keep)
        for b in not_yet:
            self._schedule(b.expires_at, b.aor)
        return removed
