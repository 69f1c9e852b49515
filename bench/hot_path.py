"""CPU cost of the 5GMC's SIP core per routed MESSAGE, in process, with no sockets.

Feeds the sans-IO ProxyCore the same pager MESSAGE that bench/sipp/uac_message.xml sends (CPIM
body, 5G-message headers), answers each forwarded copy with a 200 as the recipient UE would,
and advances simulated time so that every transaction runs its whole life (Timer J/K included)
— so GC and timer work at a steady rate are counted, not only the parse. Only the core's calls
are timed; building the UE's 200 is not. This is the budget the routing hot path has before
any socket I/O (a bare uvloop UDP relay costs about 26 µs per MESSAGE+200 here).

    .venv/bin/python bench/hot_path.py                     # 2000 msg/s of simulated load, 40 s
    .venv/bin/python bench/hot_path.py --rate 5000 --seconds 60
    .venv/bin/python bench/hot_path.py --profile           # where the time goes (cProfile)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import platform
import pstats
import time

from fivegmc.center.node import SipNode
from fivegmc.config import load_profile
from fivegmc.core.registrar import Flow
from fivegmc.net.loop import tune_gc
from fivegmc.obs.logging import make_logger
from fivegmc.obs.metrics import SipMetrics
from fivegmc.sip.message import make_response
from fivegmc.sip.parser import parse_message

DOMAIN = "ims.mnc000.mcc460.3gppnetwork.org"
NODE = "SIP/2.0/UDP 127.0.0.1:5060"
UAC = Flow("udp", "127.0.0.1", 7000)
UAS = Flow("udp", "127.0.0.1", 7001)
CPIM = (
    f"From: <sip:+8613800000000@{DOMAIN}>\r\nTo: <sip:+8613800000001@{DOMAIN}>\r\n"
    "DateTime: 2026-05-16T12:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\n"
    "imdn.Message-ID: {mid}\r\nimdn.Disposition-Notification: positive-delivery, display\r\n"
    "\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 14\r\n\r\nHello world!\r\n"
)


def message(i: int) -> bytes:
    body = CPIM.format(mid=f"run-{i}").encode()
    head = (
        f"MESSAGE sip:+8613800000001@{DOMAIN};user=phone SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:7000;branch=z9hG4bK-{i}-1\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:+8613800000000@{DOMAIN}>;tag={i}m1\r\n"
        f"To: <sip:+8613800000001@{DOMAIN}>\r\n"
        f"Call-ID: {i}-bench@127.0.0.1\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.msg\r\n"
        'Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"\r\n'
        f"Contribution-ID: run-{i}\r\n"
        "Conversation-ID: conv-1\r\n"
        "Request-Disposition: no-fork\r\n"
        "User-Agent: fivegmc-bench-sipp\r\n"
        "Content-Type: message/cpim\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def register(node: SipNode) -> None:
    req = (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bKreg\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:+8613800000001@{DOMAIN}>;tag=r\r\n"
        f"To: <sip:+8613800000001@{DOMAIN}>\r\nCall-ID: reg@bench\r\nCSeq: 1 REGISTER\r\n"
        'Contact: <sip:+8613800000001@127.0.0.1:7001>;+g.3gpp.icsi-ref='
        '"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"\r\n'
        "Expires: 7200\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    node.core.receive(req, UAS, 0.0)


def run(rate: int, seconds: int) -> dict[str, float]:
    profile = load_profile(None, ("log.level=WARNING",))
    from prometheus_client import CollectorRegistry

    node = SipNode(profile, SipMetrics(CollectorRegistry()), make_logger("WARNING", "json"))
    node._vias = {"udp": NODE}
    sent: list[tuple[bytes, Flow]] = []
    node.core._send = lambda data, flow: sent.append((data, flow))
    register(node)
    core = node.core
    tune_gc()
    step = 0.01
    per_step = max(1, int(rate * step))
    n = per_step * int(seconds / step)
    now = 1.0
    busy = 0.0
    worst_step = 0.0
    i = 0
    clock = time.process_time
    while i < n:
        step_busy = 0.0
        for _ in range(per_step):
            data = message(i)
            sent.clear()
            t = clock()
            core.receive(data, UAC, now)
            step_busy += clock() - t
            fwd = parse_message(sent[0][0])
            answer = make_response(fwd, 200, to_tag="uas").to_bytes()  # type: ignore[arg-type]
            t = clock()
            core.receive(answer, UAS, now)
            step_busy += clock() - t
            i += 1
        t = clock()
        core.handle_timer(now)
        step_busy += clock() - t
        busy += step_busy
        worst_step = max(worst_step, step_busy)
        now += step
    servers, clients = core.transaction_counts
    return {"messages": n, "us_per_message": busy / n * 1e6, "worst_10ms_step_ms":
            worst_step * 1e3, "live_server_txns": servers, "live_client_txns": clients,
            "gc_collections": sum(s["collections"] for s in gc.get_stats())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=2000, help="simulated MESSAGE/s (default 2000)")
    ap.add_argument("--seconds", type=int, default=40, help="simulated seconds (default 40)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the run")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}; simulated load {args.rate} MESSAGE/s for "
          f"{args.seconds} s (every transaction runs to Timer J/K)")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        result = run(args.rate, args.seconds)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        print("(timings under cProfile are inflated; run without --profile for the figure)")
    else:
        result = run(args.rate, args.seconds)
    print(f"core CPU per routed MESSAGE (+ its 200 and timers): {result['us_per_message']:.1f} µs"
          f"  -> {1e6 / result['us_per_message']:.0f} MESSAGE/s per core before socket I/O")
    print(f"worst 10 ms step of core work: {result['worst_10ms_step_ms']:.1f} ms; "
          f"transactions alive at the end: {result['live_server_txns']} server / "
          f"{result['live_client_txns']} client; GC collections: {result['gc_collections']}")


if __name__ == "__main__":
    main()
