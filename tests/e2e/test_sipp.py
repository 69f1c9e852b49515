"""SIPp as an independent peer against ``fivegmc run`` (scenarios in ``bench/sipp/``).

Each test starts the node as a subprocess on free ports of 127.0.0.1, registers users with
``register.xml`` (their Contact is the port the UAS scenario then listens on), and sends pager
MESSAGEs (``uac_message.xml``) that the node relays to the UAS (``uas_message.xml``). Pass =
SIPp's own statistics (``-trace_stat``) show every call successful, none failed, no unexpected
message, and the UAS received exactly one call per MESSAGE sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import peers

pytestmark = [*peers.SIPP_MARKS, pytest.mark.timeout(60)]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[peers.SipNode]:
    n = peers.fivegmc_node(tmp_path / "node")
    n.start()
    try:
        yield n
    finally:
        n.stop()


def _explain(node: peers.SipNode, *results: peers.SippResult) -> str:
    parts = [r.summary() for r in results]
    parts += [r.errors_tail() for r in results]
    parts.append(node.logs())
    return "\n".join(p for p in parts if p)


def _register(node: peers.SipNode, work: Path, transport: str, users: int,
              ue_port: int) -> peers.SippResult:
    users_csv = peers.write_users_csv(work / "users.csv", users)
    reg = peers.run_sipp(
        peers.sipp_args(
            "register.xml", remote=(peers.LOCALHOST, node.sip_port), local_port=ue_port,
            transport=transport, inf=[users_csv], calls=users, rate=1000, timeout_s=15,
        ),
        work, timeout=20,
    )
    assert reg.returncode == 0, _explain(node, reg)
    assert reg.successful == users and reg.failed == 0, _explain(node, reg)
    assert reg.unexpected == 0, _explain(node, reg)
    return reg


@pytest.mark.parametrize(
    ("transport", "users", "messages", "rate"),
    [
        pytest.param("udp", 500, 2000, 500, id="udp-2000-at-500ps"),
        pytest.param("tcp", 500, 2000, 500, id="tcp-2000-at-500ps"),
    ],
)
def test_message_relay(node: peers.SipNode, tmp_path: Path, transport: str, users: int,
                       messages: int, rate: int) -> None:
    work = tmp_path / "sipp"
    work.mkdir()
    ue_port = peers.free_port(exclude=[node.sip_port, node.admin_port or 0])
    _register(node, work, transport, users, ue_port)

    pairs_csv = peers.write_pairs_csv(work / "pairs.csv", users)
    uas_argv = peers.sipp_args("uas_message.xml", remote=None, local_port=ue_port,
                               transport=transport, extra=["-d", "2000"])
    uac_port = peers.free_port(exclude=[node.sip_port, node.admin_port or 0, ue_port])
    with peers.SippServer(uas_argv, work) as uas:
        uac = peers.run_sipp(
            peers.sipp_args(
                "uac_message.xml", remote=(peers.LOCALHOST, node.sip_port), local_port=uac_port,
                transport=transport, inf=[pairs_csv], calls=messages, rate=rate,
                timeout_s=messages / rate + 10, rtt=True,
            ),
            work, timeout=messages / rate + 15,
        )
    ue = uas.stop()

    why = _explain(node, uac, ue)
    assert node.alive(), why
    assert uac.returncode == 0, why
    assert uac.created == messages, why
    assert uac.successful == messages, why
    assert uac.failed == 0, why
    assert uac.unexpected == 0, why
    assert len(uac.rtts_ms) == messages, why
    # the UE saw each MESSAGE once (as one call), answered all, and nothing unexpected
    assert ue.incoming == messages, why
    assert ue.failed == 0 and ue.unexpected == 0, why


def test_options_capability_query(node: peers.SipNode, tmp_path: Path) -> None:
    """OPTIONS to a registered RCS user is answered 200 (by the node or by the UE)."""
    work = tmp_path / "sipp"
    work.mkdir()
    users, queries = 50, 200
    ue_port = peers.free_port(exclude=[node.sip_port, node.admin_port or 0])
    _register(node, work, "udp", users, ue_port)
    pairs_csv = peers.write_pairs_csv(work / "pairs.csv", users)
    uas_argv = peers.sipp_args("uas_message.xml", remote=None, local_port=ue_port,
                               extra=["-d", "2000"])
    uac_port = peers.free_port(exclude=[node.sip_port, node.admin_port or 0, ue_port])
    with peers.SippServer(uas_argv, work) as uas:
        opt = peers.run_sipp(
            peers.sipp_args(
                "options.xml", remote=(peers.LOCALHOST, node.sip_port), local_port=uac_port,
                inf=[pairs_csv], calls=queries, rate=200, timeout_s=15, rtt=True,
            ),
            work, timeout=20,
        )
    ue = uas.stop()
    why = _explain(node, opt, ue)
    assert opt.returncode == 0, why
    assert opt.successful == queries and opt.failed == 0 and opt.unexpected == 0, why
    assert ue.failed == 0 and ue.unexpected == 0, why
