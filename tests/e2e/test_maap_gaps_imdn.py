"""The automatic P2A ``delivered`` IMDN end to end (RFC 5438 §7): a real UE registered at the
5GMC over TCP writes to a chatbot asking ``positive-delivery`` and gets the delivered IMDN
from the chatbot URI through the 5GMC; a message that does not ask gets none."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from fivegmc.cpim import build_cpim, parse_imdn

from .maap_net import maap_network
from .ue import DOMAIN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

BOT_URI = "sip:labbot@botplatform.ims.mnc000.mcc460.3gppnetwork.org"


async def test_ue_gets_delivered_imdn_only_when_it_asks() -> None:
    async with maap_network() as net:
        ue = await net.ue("+8613800000061")
        resp = await ue.send_to_bot(BOT_URI, "text/plain;charset=UTF-8", "你好".encode(),
                                    mid="ask-1")  # positive-delivery, display
        assert resp.status == 200
        req, cpim = await ue.next_message()
        assert req.method == "MESSAGE"
        assert (cpim.content_type or "").startswith("message/imdn+xml")
        assert "labbot@botplatform" in cpim.from_ and ue.number in cpim.to
        assert cpim.message_id not in (None, "ask-1") and not cpim.disposition_notification
        report = parse_imdn(cpim.content)
        assert (report.message_id, report.kind, report.status) == ("ask-1", "delivery",
                                                                   "delivered")

        # display only: the chatbot's client reports nothing until the CSP reads it
        body = build_cpim(from_=f"sip:{ue.number}@{DOMAIN}", to=BOT_URI,
                          content_type="text/plain", content=b"no report please",
                          message_id=uuid.uuid4().hex,
                          datetime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          disposition=("display",))
        before = len(ue.received)
        assert (await ue.request(ue._cpim_request(BOT_URI, body))).status == 200
        assert (await ue.typing(BOT_URI)).status == 200
        await asyncio.sleep(0.5)
        assert [r for r in ue.received[before:] if r.method == "MESSAGE"] == []
