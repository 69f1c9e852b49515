"""tshark as an independent decoder of what ``fivegmc run`` puts on the wire.

Capture the loopback on the node's SIP port while SIPp registers a few users and exchanges pager
MESSAGEs (CPIM body) through the node over UDP and TCP; then Wireshark's dissectors must find no
malformed packet and no expert-info error on any SIP packet, and must decode the REGISTERs,
MESSAGEs (with their ``message/cpim`` body) and 200s.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from . import peers

pytestmark = [*peers.SIPP_MARKS, peers.TSHARK_MARK, pytest.mark.timeout(90)]

USERS = 10
MESSAGES = 20  # per transport


def _exchange(node: peers.SipNode, work: Path, transport: str, ue_port: int,
              uac_port: int) -> tuple[int, int]:
    """Register USERS and relay MESSAGES pager MESSAGEs over ``transport``; SIPp must pass."""
    tdir = work / transport
    tdir.mkdir()
    # distinct users per transport: a user registered over both would have two contacts
    first = {"udp": 0, "tcp": 100}[transport]
    users_csv = peers.write_users_csv(tdir / "users.csv", USERS, first=first)
    pairs_csv = peers.write_pairs_csv(tdir / "pairs.csv", USERS, first=first)
    remote = (peers.LOCALHOST, node.sip_port)
    reg = peers.run_sipp(
        peers.sipp_args("register.xml", remote=remote, local_port=ue_port, transport=transport,
                        inf=[users_csv], calls=USERS, rate=100, timeout_s=10),
        tdir, timeout=15,
    )
    assert reg.returncode == 0 and reg.successful == USERS, f"{reg.summary()}\n{node.logs()}"
    uas_argv = peers.sipp_args("uas_message.xml", remote=None, local_port=ue_port,
                               transport=transport, extra=["-d", "1000"])
    with peers.SippServer(uas_argv, tdir):
        uac = peers.run_sipp(
            peers.sipp_args("uac_message.xml", remote=remote, local_port=uac_port,
                            transport=transport, inf=[pairs_csv], calls=MESSAGES, rate=100,
                            timeout_s=10),
            tdir, timeout=15,
        )
    assert uac.returncode == 0 and uac.successful == MESSAGES, (
        f"{uac.summary()}\n{uac.errors_tail()}\n{node.logs()}"
    )
    return reg.successful, uac.successful


def test_capture_decodes_clean(tmp_path: Path) -> None:
    node = peers.fivegmc_node(tmp_path / "node")
    port = node.sip_port
    # UE ports (UAS contact, UAC) per transport, chosen now so the capture sees every leg:
    # over TCP the node reaches the UE's contact from an ephemeral port of its own
    extra = peers.free_ports(4, exclude=[port, node.admin_port or 0])
    ue_ports = {"udp": (extra[0], extra[1]), "tcp": (extra[2], extra[3])}
    sip_ports = [port, *extra]
    pcap = tmp_path / "sip.pcapng"
    capture = peers.TsharkCapture(sip_ports, pcap)
    try:
        capture.start()
    except (RuntimeError, TimeoutError) as exc:
        if "ermission" in str(exc):
            pytest.skip(f"tshark may not capture on lo as this user: {exc}")
        raise
    try:
        with node:
            for transport, (ue_port, uac_port) in ue_ports.items():
                _exchange(node, tmp_path, transport, ue_port, uac_port)
    finally:
        capture.stop()

    # decode these ports as SIP (both directions), whatever the port numbers
    decode = [f"{proto}.port=={p},sip" for p in sip_ports for proto in ("udp", "tcp")]

    malformed = peers.tshark_read(pcap, "_ws.malformed", decode_as=decode)
    assert malformed == [], f"malformed packets: {malformed[:5]}"

    errors = peers.tshark_read(pcap, "sip && _ws.expert.severity == error", decode_as=decode,
                               fields=["frame.number", "_ws.expert.message"])
    assert errors == [], f"expert-info errors on SIP packets: {errors[:5]}"

    rows = peers.tshark_read(pcap, "sip", decode_as=decode,
                             fields=["sip.Method", "sip.Status-Code", "sip.CSeq.method"])
    assert rows, "no SIP packet decoded"
    methods: Counter[str] = Counter()
    ok_by_method: Counter[str] = Counter()
    for row in rows:
        # one TCP segment may carry several SIP messages: values are joined with "|"
        # (requests and responses travel in opposite directions, so never share a segment)
        method, status, cseq = [*row, "", "", ""][:3]
        methods.update(m for m in method.split("|") if m)
        if status:
            pairs = zip(status.split("|"), cseq.split("|"), strict=False)
            ok_by_method.update(m for st, m in pairs if st == "200")
    # REGISTER: UE -> node; MESSAGE: UE -> node and node -> UE (relayed)
    assert methods["REGISTER"] >= 2 * USERS, methods
    assert methods["MESSAGE"] >= 2 * 2 * MESSAGES, methods
    assert ok_by_method["REGISTER"] >= 2 * USERS, ok_by_method
    assert ok_by_method["MESSAGE"] >= 2 * 2 * MESSAGES, ok_by_method

    cpim = peers.tshark_read(
        pcap,
        'sip.Method == "MESSAGE" && sip.Content-Type contains "message/cpim" && sip.msg_body'
        ' && frame contains "imdn.Message-ID" && frame contains "Hello world!"',
        decode_as=decode,
        fields=["frame.number"],
    )
    assert len(cpim) >= 2 * 2 * MESSAGES, f"MESSAGEs with a message/cpim body: {len(cpim)}"
