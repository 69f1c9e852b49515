"""Capability answers for SIP OPTIONS (protocols.md §4; RCC.07 as restated in TS 33.127):
200 with RCS tags = 5G Message user, 200 without = IMS/SMS only, 480 = RCS user offline,
404 = not a subscriber. Also the number-range directory that decides the subscriber kind."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fivegmc.config import NumberRange
from fivegmc.core.capability import capability_answer, format_tags, is_rcs_tag
from fivegmc.core.registrar import Binding, contact_key, feature_tags
from fivegmc.core.subscribers import SubscriberDirectory, SubscriberKind

from .sipbuild import (
    ALICE,
    IARI_FTHTTP,
    ICSI_MSG,
    SMS_USER,
    STRANGER,
    UDP_A,
    directory_for,
    lab_profile,
    name_addr,
)

MMTEL = '+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"'
SMSIP = "+g.3gpp.smsip"


def binding(tags: str, host: str = "192.0.2.1") -> Binding:
    contact = name_addr(f"<sip:{ALICE}@{host}:5060>;{tags}" if tags else f"<sip:{ALICE}@{host}>")
    return Binding(
        aor=ALICE, contact=contact, contact_key=contact_key(contact.uri), expires_at=3600.0,
        call_id="c1", cseq=1, flow=UDP_A, feature_tags=feature_tags(contact),
    )


# -- is_rcs_tag -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("+g.3gpp.icsi-ref", '"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'),
        ("+g.3gpp.icsi-ref", '"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session"'),
        ("+g.3gpp.icsi-ref", '"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.largemsg"'),
        ("+g.3gpp.iari-ref", '"urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp"'),
        ("+g.3gpp.iari-ref", '"urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.chatbot.sa"'),
        ("+g.3gpp.iari-ref", '"urn%3Aurn-7%3A3gpp-application.ims.iari.rcse.dp"'),
        ("+g.gsma.rcs.botversion", '"#=1,#=2"'),
        ("+g.gsma.rcs.isbot", None),
        ("+g.gsma.rcs.cpm.pager-large", None),
        ("+G.3GPP.ICSI-REF", '"URN%3AURN-7%3A3GPP-SERVICE.IMS.ICSI.OMA.CPM.MSG"'),
    ],
)
def test_rcs_feature_tags_are_recognised(name: str, value: str | None) -> None:
    assert is_rcs_tag(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("+g.3gpp.icsi-ref", '"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"'),  # voice
        ("+g.3gpp.icsi-ref", None),  # no value says nothing about the service
        ("+g.3gpp.smsip", None),  # SMS over IP: IMS, not RCS
        ("video", None),
        ("+sip.instance", '"<urn:gsma:imei:35000000-000000-0>"'),
        ("expires", "3600"),
    ],
)
def test_non_rcs_tags_are_not_recognised(name: str, value: str | None) -> None:
    assert not is_rcs_tag(name, value)


# -- capability_answer: the four cases --------------------------------------------------------


def test_unknown_number_is_404() -> None:
    assert capability_answer(SubscriberKind.UNKNOWN, [binding(ICSI_MSG)]).status == 404


def test_sms_only_subscriber_is_200_without_tags_even_if_registered() -> None:
    answer = capability_answer(SubscriberKind.SMS_ONLY, [binding(f"{ICSI_MSG};{SMSIP}")])
    assert (answer.status, answer.tags) == (200, ())


def test_offline_rcs_subscriber_is_480() -> None:
    assert capability_answer(SubscriberKind.RCS, []).status == 480


def test_online_rcs_subscriber_gets_only_its_rcs_tags() -> None:
    answer = capability_answer(SubscriberKind.RCS, [binding(f"{ICSI_MSG};{MMTEL};{SMSIP}")])
    assert answer.status == 200
    assert answer.tags == (
        ("+g.3gpp.icsi-ref", '"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'),
    )


def test_rcs_subscriber_registered_without_rcs_client_is_200_without_tags() -> None:
    answer = capability_answer(SubscriberKind.RCS, [binding(f"{MMTEL};{SMSIP}")])
    assert (answer.status, answer.tags) == (200, ())


def test_tags_of_several_devices_are_merged_without_duplicates() -> None:
    phone = binding(ICSI_MSG, host="192.0.2.1")
    tablet = binding(f"{ICSI_MSG};{IARI_FTHTTP}", host="192.0.2.2")
    answer = capability_answer(SubscriberKind.RCS, [phone, tablet])
    assert [name for name, _ in answer.tags] == ["+g.3gpp.icsi-ref", "+g.3gpp.iari-ref"]


def test_format_tags_renders_contact_parameters() -> None:
    tags = (("+g.gsma.rcs.isbot", None), ("+g.gsma.rcs.botversion", '"#=1"'))
    assert format_tags(tags) == ';+g.gsma.rcs.isbot;+g.gsma.rcs.botversion="#=1"'
    assert format_tags(()) == ""


# -- the subscriber directory -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("+8613800000000", SubscriberKind.RCS),  # first of the range
        ("+8613800099999", SubscriberKind.RCS),  # last of the range
        ("+8613800100000", SubscriberKind.UNKNOWN),  # one past the end
        ("+8613799999999", SubscriberKind.UNKNOWN),  # one before the start
        (ALICE, SubscriberKind.RCS),
        (SMS_USER, SubscriberKind.SMS_ONLY),
        ("+8613900009999", SubscriberKind.SMS_ONLY),
        ("+8613900010000", SubscriberKind.UNKNOWN),
        (STRANGER, SubscriberKind.UNKNOWN),
        ("+86138000000010", SubscriberKind.UNKNOWN),  # one digit too many
        ("+861380000000", SubscriberKind.UNKNOWN),  # one digit too few
        (None, SubscriberKind.UNKNOWN),
    ],
)
def test_lab_number_ranges(number: str | None, kind: SubscriberKind) -> None:
    assert directory_for(lab_profile()).kind(number) is kind


_RANGES = [
    NumberRange(first="+861380000", last="+861380499", kind="rcs"),
    NumberRange(first="+861380500", last="+861380999", kind="sms_only"),
    NumberRange(first="+4420", last="+4429", kind="rcs"),
]


@given(st.integers(0, 10**10 - 1), st.integers(4, 10))
def test_directory_agrees_with_a_linear_scan(value: int, width: int) -> None:
    number = "+" + str(value).zfill(width)[-width:]
    expected = SubscriberKind.UNKNOWN
    for r in _RANGES:
        if len(r.first) == len(number) and r.first <= number <= r.last:
            expected = SubscriberKind(r.kind)
    assert SubscriberDirectory(_RANGES).kind(number) is expected


def test_capability_cache_ttl_invalidate_and_bound() -> None:
    from fivegmc.core.capability import CapabilityAnswer, CapabilityCache

    cache = CapabilityCache(ttl=10.0, max_entries=2)
    ans = CapabilityAnswer(200, None, (("+g.gsma.rcs.botversion", '"#=1"'),))
    cache.put("+8613800000001", ans, now=0.0)
    assert cache.get("+8613800000001", now=9.9) == ans
    assert cache.get("+8613800000001", now=10.0) is None  # expired, and dropped
    cache.put("+8613800000001", ans, now=0.0)
    cache.invalidate("+8613800000001")
    assert cache.get("+8613800000001", now=1.0) is None
    for i in range(3):
        cache.put(f"+861380000000{i}", ans, now=0.0)
    assert len(cache) <= 2  # bounded
    off = CapabilityCache(ttl=0.0)
    off.put("+8613800000001", ans, now=0.0)
    assert off.get("+8613800000001", now=0.0) is None
