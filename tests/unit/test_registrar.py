"""The registrar's binding rules (RFC 3261 §10.3), with time passed in by hand."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings, stateful
from hypothesis import strategies as st

from fivegmc.config import RegistrarConfig
from fivegmc.core.registrar import Binding, Flow, RegisterOutcome, Registrar, contact_key
from fivegmc.sip.uri import NameAddr, SipUri

from .sipbuild import ALICE, BOB, ICSI_MSG, UDP_A, UDP_B, name_addr

CFG = RegistrarConfig(min_expires=60, default_expires=3600, max_expires=7200,
                      max_contacts_per_aor=3)
PHONE = "<sip:+8613800000001@192.0.2.1:5060>"
TABLET = "<sip:+8613800000001@192.0.2.5:5060>"
LAPTOP = "<sip:+8613800000001@192.0.2.6:5060;transport=tcp>"
WATCH = "<sip:+8613800000001@192.0.2.7:5060>"


def contacts(*values: str) -> list[NameAddr]:
    return [name_addr(v) for v in values]


def reg(
    r: Registrar,
    *values: str,
    expires: int | None = None,
    call_id: str = "call-1",
    cseq: int = 1,
    now: float = 0.0,
    aor: str = ALICE,
    flow: Flow = UDP_A,
) -> RegisterOutcome:
    """REGISTER ``values`` as Contacts; no values is a query."""
    return r.register(aor, contacts(*values), expires_header=expires, call_id=call_id,
                      cseq=cseq, flow=flow, now=now)


def wildcard(r: Registrar, *, expires: int | None = 0, call_id: str = "call-1", cseq: int = 9,
             now: float = 0.0, aor: str = ALICE) -> RegisterOutcome:
    return r.register(aor, None, expires_header=expires, call_id=call_id, cseq=cseq,
                      flow=UDP_A, now=now)


def hosts(bindings: list[Binding] | tuple[Binding, ...]) -> list[str]:
    out = []
    for b in bindings:
        assert isinstance(b.contact.uri, SipUri)
        out.append(b.contact.uri.host)
    return out


def remaining(r: Registrar, now: float, aor: str = ALICE) -> dict[str, int]:
    return {str(b.contact.uri): b.remaining(now) for b in r.lookup(aor, now)}


@pytest.fixture
def r() -> Registrar:
    return Registrar(CFG)


# -- adding, refreshing, removing ---------------------------------------------------------------


def test_first_register_adds_one_binding(r: Registrar) -> None:
    out = reg(r, PHONE, expires=600, now=100.0)
    assert (out.status, out.changed) == (200, True)
    assert [b.contact_key for b in out.bindings] == ["sip:+8613800000001@192.0.2.1:5060;"]
    assert out.bindings[0].expires_at == 700.0
    assert (r.binding_count, r.aor_count) == (1, 1)
    assert r.lookup(ALICE, 100.0) == list(out.bindings)


def test_one_register_can_add_several_contacts(r: Registrar) -> None:
    out = reg(r, PHONE, TABLET, LAPTOP, expires=600)
    assert out.status == 200
    assert hosts(out.bindings) == ["192.0.2.1", "192.0.2.5", "192.0.2.6"]
    assert r.binding_count == 3


def test_refresh_keeps_one_binding_and_moves_its_expiry(r: Registrar) -> None:
    reg(r, PHONE, expires=600, cseq=1, now=0.0)
    out = reg(r, PHONE, expires=600, cseq=2, now=500.0)
    assert out.status == 200
    assert r.binding_count == 1
    assert remaining(r, 500.0) == {"sip:+8613800000001@192.0.2.1:5060": 600}
    assert r.lookup(ALICE, 1000.0) != []  # would have expired at 600 without the refresh


def test_contacts_compare_by_uri_not_by_feature_tags(r: Registrar) -> None:
    reg(r, PHONE, expires=600, cseq=1)
    out = reg(r, f"{PHONE};{ICSI_MSG}", expires=600, cseq=2)
    assert len(out.bindings) == 1
    assert out.bindings[0].feature_tags == (("+g.3gpp.icsi-ref", ICSI_MSG.split("=", 1)[1]),)


def test_contact_key_defaults_the_port_and_folds_host_case() -> None:
    assert contact_key(name_addr("<sip:a@EXAMPLE.com>").uri) == contact_key(
        name_addr("<sip:a@example.com:5060>").uri)
    assert contact_key(name_addr("<sips:a@example.com>").uri).endswith(":5061;")
    assert contact_key(name_addr("<sip:a@h;transport=TCP>").uri) != contact_key(
        name_addr("<sip:a@h>").uri)


def test_second_contact_from_another_call_id_is_added_beside_the_first(r: Registrar) -> None:
    reg(r, PHONE, expires=600, call_id="phone")
    out = reg(r, TABLET, expires=600, call_id="tablet")
    assert hosts(out.bindings) == ["192.0.2.1", "192.0.2.5"]  # 200 lists all bindings


def test_expires_zero_removes_one_contact_and_keeps_the_others(r: Registrar) -> None:
    reg(r, PHONE, TABLET, expires=600, cseq=1)
    out = reg(r, f"{TABLET};expires=0", expires=600, cseq=2)
    assert (out.status, out.changed) == (200, True)
    assert hosts(out.bindings) == ["192.0.2.1"]
    assert r.binding_count == 1


def test_removing_the_last_contact_forgets_the_aor(r: Registrar) -> None:
    reg(r, PHONE, expires=600, cseq=1)
    out = reg(r, PHONE, expires=0, cseq=2)
    assert (out.status, out.bindings) == (200, ())
    assert (r.binding_count, r.aor_count) == (0, 0)
    assert r.lookup(ALICE, 0.0) == []


def test_removing_an_unknown_contact_is_200_and_changes_nothing(r: Registrar) -> None:
    reg(r, PHONE, expires=600, cseq=1)
    out = reg(r, f"{TABLET};expires=0", cseq=2)
    assert (out.status, out.changed) == (200, False)
    assert hosts(out.bindings) == ["192.0.2.1"]


def test_bindings_of_different_aors_are_independent(r: Registrar) -> None:
    reg(r, PHONE, expires=600)
    reg(r, "<sip:+8613800000002@192.0.2.2>", expires=600, aor=BOB)
    reg(r, PHONE, expires=0, cseq=2)
    assert r.lookup(ALICE, 0.0) == []
    assert len(r.lookup(BOB, 0.0)) == 1
    assert (r.binding_count, r.aor_count) == (1, 1)


# -- how long: Expires header, expires param, default, bounds ------------------------------------


def test_contact_expires_param_wins_over_the_expires_header(r: Registrar) -> None:
    out = reg(r, f"{PHONE};expires=300", TABLET, expires=900)
    assert [b.expires_at for b in out.bindings] == [300.0, 900.0]


def test_expires_param_zero_removes_even_with_a_nonzero_header(r: Registrar) -> None:
    reg(r, PHONE, expires=600, cseq=1)
    reg(r, f"{PHONE};expires=0", expires=3600, cseq=2)
    assert r.lookup(ALICE, 0.0) == []


def test_no_expiry_anywhere_gets_the_default(r: Registrar) -> None:
    out = reg(r, PHONE, expires=None, now=10.0)
    assert out.bindings[0].expires_at == 10.0 + CFG.default_expires


@pytest.mark.parametrize("asked", [7201, 86400, 4294967295])
def test_long_expiry_is_cut_to_max_expires(r: Registrar, asked: int) -> None:
    assert reg(r, PHONE, expires=asked).bindings[0].expires_at == CFG.max_expires
    r2 = Registrar(CFG)
    assert reg(r2, f"{PHONE};expires={asked}").bindings[0].expires_at == CFG.max_expires


@pytest.mark.parametrize("asked", [1, 30, 59])
def test_short_expiry_is_423_with_min_expires_and_changes_nothing(r: Registrar,
                                                                  asked: int) -> None:
    reg(r, PHONE, expires=600, cseq=1)
    out = reg(r, TABLET, expires=asked, cseq=2)
    assert (out.status, out.min_expires) == (423, 60)
    assert hosts(r.lookup(ALICE, 0.0)) == ["192.0.2.1"]


def test_expiry_equal_to_min_expires_is_accepted(r: Registrar) -> None:
    assert reg(r, PHONE, expires=60).status == 200


def test_a_short_expires_param_fails_the_whole_register(r: Registrar) -> None:
    out = reg(r, PHONE, f"{TABLET};expires=5", expires=600)
    assert out.status == 423
    assert r.binding_count == 0  # the REGISTER is atomic: the phone was not added either


@pytest.mark.parametrize("param", ["expires=-1", "expires=soon", "expires=1.5"])
def test_malformed_expires_param_is_400(r: Registrar, param: str) -> None:
    assert reg(r, f"{PHONE};{param}", expires=600).status == 400
    assert r.binding_count == 0


def test_empty_expires_param_is_a_parse_error() -> None:
    from fivegmc.sip.errors import RemoteProtocolError
    from fivegmc.sip.uri import parse_name_addr

    with pytest.raises(RemoteProtocolError):  # pvalue is 1*paramchar (§25.1) → 400 upstream
        parse_name_addr(f"{PHONE};expires=")


def test_non_ascii_digit_expires_param_is_400_not_a_crash(r: Registrar) -> None:
    assert reg(r, f"{PHONE};expires=\u00b2", expires=600).status == 400


# -- wildcard ------------------------------------------------------------------------------------


def test_wildcard_with_expires_zero_removes_every_binding(r: Registrar) -> None:
    reg(r, PHONE, TABLET, expires=600, call_id="a", cseq=1)
    reg(r, LAPTOP, expires=600, call_id="b", cseq=1)
    out = wildcard(r, call_id="c", cseq=1)
    assert (out.status, out.bindings, out.changed) == (200, (), True)
    assert (r.binding_count, r.aor_count) == (0, 0)


@pytest.mark.parametrize("expires", [None, 1, 3600])
def test_wildcard_without_expires_zero_is_400(r: Registrar, expires: int | None) -> None:
    reg(r, PHONE, expires=600)
    assert wildcard(r, expires=expires).status == 400
    assert r.binding_count == 1


def test_wildcard_with_an_old_cseq_on_the_same_call_id_is_400(r: Registrar) -> None:
    reg(r, PHONE, expires=600, call_id="a", cseq=5)
    assert wildcard(r, call_id="a", cseq=5).status == 400
    assert wildcard(r, call_id="a", cseq=4).status == 400
    assert r.binding_count == 1
    assert wildcard(r, call_id="a", cseq=6).status == 200
    assert r.binding_count == 0


def test_wildcard_for_an_aor_without_bindings_is_200_unchanged(r: Registrar) -> None:
    out = wildcard(r)
    assert (out.status, out.changed) == (200, False)


# -- queries ---------------------------------------------------------------------------------


def test_register_without_contact_is_a_query_answering_the_bindings(r: Registrar) -> None:
    reg(r, PHONE, TABLET, expires=600, cseq=1)
    out = reg(r, cseq=2, now=100.0)
    assert (out.status, out.changed) == (200, False)
    assert hosts(out.bindings) == ["192.0.2.1", "192.0.2.5"]
    assert r.binding_count == 2


def test_query_for_an_unknown_aor_is_200_with_no_bindings(r: Registrar) -> None:
    assert reg(r, aor=BOB) == RegisterOutcome(200, bindings=())


def test_query_does_not_list_expired_bindings(r: Registrar) -> None:
    reg(r, PHONE, expires=100)
    assert reg(r, cseq=2, now=100.0).bindings == ()


# -- Call-ID / CSeq ordering (§10.3 step 7) ------------------------------------------------------


def test_same_call_id_with_a_lower_or_equal_cseq_is_rejected(r: Registrar) -> None:
    reg(r, PHONE, expires=600, cseq=10)
    for cseq in (10, 9, 1):
        out = reg(r, PHONE, expires=0, cseq=cseq)
        assert out.status == 400
    assert r.binding_count == 1


def test_same_call_id_with_a_higher_cseq_is_accepted(r: Registrar) -> None:
    reg(r, PHONE, expires=600, cseq=10)
    assert reg(r, PHONE, expires=1200, cseq=11).status == 200
    assert r.lookup(ALICE, 0.0)[0].expires_at == 1200.0


def test_a_different_call_id_replaces_the_binding_whatever_its_cseq(r: Registrar) -> None:
    reg(r, PHONE, expires=600, call_id="old", cseq=10)
    out = reg(r, PHONE, expires=1200, call_id="new", cseq=1)
    assert out.status == 200
    (b,) = r.lookup(ALICE, 0.0)
    assert (b.call_id, b.cseq, b.expires_at) == ("new", 1, 1200.0)


def test_an_out_of_order_contact_fails_the_whole_register(r: Registrar) -> None:
    reg(r, PHONE, expires=600, call_id="a", cseq=5)
    out = reg(r, TABLET, PHONE, expires=600, call_id="a", cseq=3)
    assert out.status == 400
    assert hosts(r.lookup(ALICE, 0.0)) == ["192.0.2.1"]


def test_the_cseq_check_only_concerns_live_bindings(r: Registrar) -> None:
    reg(r, PHONE, expires=60, call_id="a", cseq=5)
    assert reg(r, PHONE, expires=60, call_id="a", cseq=1, now=61.0).status == 200


# -- limits -----------------------------------------------------------------------------------


def test_more_contacts_than_allowed_is_403_and_changes_nothing(r: Registrar) -> None:
    assert reg(r, PHONE, TABLET, LAPTOP, expires=600, call_id="a").status == 200
    out = reg(r, WATCH, expires=600, call_id="b")
    assert out.status == 403
    assert r.binding_count == 3
    assert "192.0.2.7" not in hosts(r.lookup(ALICE, 0.0))


def test_a_full_aor_can_still_replace_and_remove(r: Registrar) -> None:
    reg(r, PHONE, TABLET, LAPTOP, expires=600, call_id="a", cseq=1)
    assert reg(r, PHONE, expires=900, call_id="a", cseq=2).status == 200
    assert reg(r, f"{TABLET};expires=0", WATCH, expires=600, call_id="a", cseq=3).status == 200
    assert sorted(hosts(r.lookup(ALICE, 0.0))) == ["192.0.2.1", "192.0.2.6", "192.0.2.7"]


def test_expired_bindings_do_not_count_against_the_limit(r: Registrar) -> None:
    reg(r, PHONE, TABLET, LAPTOP, expires=60, call_id="a")
    assert reg(r, WATCH, expires=600, call_id="b", now=60.0).status == 200
    assert r.binding_count == 1


@pytest.mark.parametrize("q", ["1.5", "-0.1", "high", "nan", "inf"])
def test_bad_q_is_400(r: Registrar, q: str) -> None:
    assert reg(r, f"{PHONE};q={q}", expires=600).status == 400


# -- expiry over time ----------------------------------------------------------------------------


def test_lookup_stops_returning_a_binding_the_moment_it_expires(r: Registrar) -> None:
    reg(r, PHONE, expires=600, now=1000.0)
    assert r.lookup(ALICE, 1599.9) != []
    assert r.lookup(ALICE, 1600.0) == []


def test_expire_removes_due_bindings_and_returns_them(r: Registrar) -> None:
    reg(r, PHONE, expires=100, call_id="a")
    reg(r, TABLET, expires=200, call_id="b")
    assert r.next_expiry() == 100.0
    assert r.expire(99.0) == []
    removed = r.expire(100.0)
    assert hosts(removed) == ["192.0.2.1"]
    assert r.binding_count == 1
    assert hosts(r.expire(500.0)) == ["192.0.2.5"]
    assert (r.binding_count, r.aor_count) == (0, 0)


def test_expire_keeps_a_binding_refreshed_after_its_first_deadline_was_queued(
        r: Registrar) -> None:
    reg(r, PHONE, expires=100, cseq=1, now=0.0)
    reg(r, PHONE, expires=100, cseq=2, now=50.0)
    assert r.expire(100.0) == []
    assert r.binding_count == 1
    assert hosts(r.expire(150.0)) == ["192.0.2.1"]


def test_remaining_rounds_to_whole_seconds(r: Registrar) -> None:
    (b,) = reg(r, PHONE, expires=600, now=0.0).bindings
    assert (b.remaining(0.0), b.remaining(599.4), b.remaining(599.6), b.remaining(700.0)) == (
        600, 1, 0, 0)


# -- q ordering and what a binding remembers ------------------------------------------------------


def test_lookup_orders_by_q_highest_first_stable_for_ties() -> None:
    r = Registrar(RegistrarConfig(max_contacts_per_aor=4))
    reg(r, f"{PHONE};q=0.1", f"{TABLET};q=0.9", LAPTOP, f"{WATCH};q=0.9", expires=600)
    assert hosts(r.lookup(ALICE, 0.0)) == ["192.0.2.6", "192.0.2.5", "192.0.2.7", "192.0.2.1"]
    assert [b.q for b in r.lookup(ALICE, 0.0)] == [1.0, 0.9, 0.9, 0.1]


def test_binding_keeps_rcs_feature_tags_and_drops_binding_params(r: Registrar) -> None:
    contact = (
        f'{PHONE};+sip.instance="<urn:gsma:imei:35000000-000000-0>";reg-id=1;q=0.5;'
        f'expires=600;{ICSI_MSG};+g.gsma.rcs.botversion="#=1,#=2";+g.gsma.rcs.isbot;video;'
        "unknown=1"
    )
    (b,) = reg(r, contact).bindings
    assert b.feature_tags == (
        ("+g.3gpp.icsi-ref", '"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'),
        ("+g.gsma.rcs.botversion", '"#=1,#=2"'),
        ("+g.gsma.rcs.isbot", None),
        ("video", None),
    )
    assert b.instance == '"<urn:gsma:imei:35000000-000000-0>"'
    assert b.q == 0.5


def test_binding_remembers_the_flow_and_the_request_identity(r: Registrar) -> None:
    (b,) = reg(r, PHONE, expires=600, call_id="abc", cseq=7, flow=UDP_B, now=3.0).bindings
    assert (b.flow, b.call_id, b.cseq, b.registered_at, b.aor) == (UDP_B, "abc", 7, 3.0, ALICE)


# -- property: a random history keeps the counters honest ------------------------------------------


_CONTACTS = [PHONE, TABLET, LAPTOP, WATCH, "<sip:+8613800000002@192.0.2.2>"]


class RegistrarMachine(stateful.RuleBasedStateMachine):
    """Random REGISTERs, wildcards, queries and expiry sweeps over advancing time."""

    def __init__(self) -> None:
        super().__init__()
        self.r = Registrar(RegistrarConfig(min_expires=10, default_expires=50, max_expires=100,
                                           max_contacts_per_aor=3))
        self.now = 0.0
        self.cseq = 0

    @stateful.rule(
        aor=st.sampled_from([ALICE, BOB]),
        picks=st.lists(st.tuples(st.sampled_from(_CONTACTS),
                                 st.sampled_from([None, 0, 5, 10, 30, 200])),
                       max_size=3),
        header=st.sampled_from([None, 0, 15, 60, 500]),
        call_id=st.sampled_from(["a", "b"]),
        bump=st.booleans(),
    )
    def register(self, aor: str, picks: list[tuple[str, int | None]], header: int | None,
                 call_id: str, bump: bool) -> None:
        if bump:
            self.cseq += 1
        values = [c if e is None else f"{c};expires={e}" for c, e in picks]
        before = {a: list(self.r.lookup(a, self.now)) for a in (ALICE, BOB)}
        out = reg(self.r, *values, expires=header, call_id=call_id, cseq=self.cseq,
                  now=self.now, aor=aor)
        if out.status != 200:  # refused: nothing may change
            assert {a: self.r.lookup(a, self.now) for a in (ALICE, BOB)} == before
        else:  # the 200 lists exactly the AoR's bindings now (no q params: same order)
            assert sorted(b.contact_key for b in out.bindings) == sorted(
                b.contact_key for b in self.r.lookup(aor, self.now))  # same set; lookup orders

    @stateful.rule(aor=st.sampled_from([ALICE, BOB]), call_id=st.sampled_from(["a", "b"]))
    def wildcard_remove(self, aor: str, call_id: str) -> None:
        self.cseq += 1
        assert wildcard(self.r, call_id=call_id, cseq=self.cseq, now=self.now,
                        aor=aor).status == 200
        assert self.r.lookup(aor, self.now) == []

    @stateful.rule(dt=st.sampled_from([0.5, 1.0, 9.0, 10.0, 29.5, 60.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @stateful.rule()
    def sweep(self) -> None:
        removed = self.r.expire(self.now)
        assert all(b.expires_at <= self.now for b in removed)

    @stateful.invariant()
    def lookup_never_returns_an_expired_binding(self) -> None:
        for aor in (ALICE, BOB):
            found = self.r.lookup(aor, self.now)
            assert all(b.expires_at > self.now for b in found)
            assert len({b.contact_key for b in found}) == len(found)
            assert len(found) <= 3

    @stateful.invariant()
    def count_matches_live_bindings_after_a_sweep(self) -> None:
        # Unswept bindings still count; a sweep (on a copy, so that later REGISTERs also
        # meet unswept ones) brings the count down to exactly the live ones.
        live = sum(len(self.r.lookup(a, self.now)) for a in (ALICE, BOB))
        assert self.r.binding_count >= live
        swept = copy.deepcopy(self.r)
        swept.expire(self.now)
        assert swept.binding_count == live
        assert swept.aor_count == len([a for a in (ALICE, BOB) if self.r.lookup(a, self.now)])
        if live:  # the next wake-up is never later than the earliest live expiry
            nxt = self.r.next_expiry()
            assert nxt is not None
            assert nxt <= min(b.expires_at for a in (ALICE, BOB)
                              for b in self.r.lookup(a, self.now))


TestRegistrarMachine = RegistrarMachine.TestCase
TestRegistrarMachine.settings = settings(max_examples=150, stateful_step_count=30,
                                         deadline=None)


@given(st.lists(st.integers(0, 7200), min_size=1, max_size=8))
def test_expiry_sweeps_at_every_deadline_leave_nothing_behind(lifetimes: list[int]) -> None:
    r = Registrar(RegistrarConfig(min_expires=1, max_expires=7200, max_contacts_per_aor=10))
    for i, life in enumerate(lifetimes):
        reg(r, f"<sip:+8613800000001@192.0.2.{i + 1}>", expires=life, call_id=f"c{i}")
    expected = sum(1 for life in lifetimes if life > 0)
    assert r.binding_count == expected
    while (t := r.next_expiry()) is not None:
        r.expire(t)
        assert all(b.expires_at > t for b in r.lookup(ALICE, t))
    assert (r.binding_count, r.aor_count) == (0, 0)
