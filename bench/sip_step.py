"""Step a SIPp pager-MESSAGE rate through ``fivegmc run`` and, beside it, Kamailio.

For each target node (a ``fivegmc run`` subprocess; Kamailio with bench/kamailio/kamailio.cfg):
register N users with SIPp (register.xml, Contact = the UAS port), then for each offered rate run
uac_message.xml for D seconds against the node, which relays every MESSAGE to uas_message.xml and
the 200 back. A step is *clean* when every MESSAGE got its 200, no call failed, there was no
retransmission (SIPp UAC and UAS ``FailedCall`` / ``Retransmissions`` statistics) and the 200s
kept up with the offered rate (>= 95 %; over TCP nothing is retransmitted, so that is how a
saturated node shows). Stepping stops at the first step that is not clean; the highest clean
offered rate is the result.

Per step: offered and achieved rate, failures, retransmissions, latency percentiles of SIPp's
per-call MESSAGE->200 response time (-trace_rtt; SIPp measures in whole milliseconds), the node's
CPU time per routed MESSAGE (utime+stime of the node's process tree from /proc/PID/stat before and
after the step), and how busy the node and SIPp kept the CPUs.

The load generator runs on the same machine: SIPp UAC and UAS share the CPU cores with the node
under test (see --pin). Results: a table on stdout and a JSON file under bench/out/.

Kamailio is installed with apt-get when missing (non-interactive); if that fails the comparison is
skipped with a message.

Examples:
    python bench/sip_step.py                      # both targets, 20 s steps
    python bench/sip_step.py --quick              # smoke run: 3 s steps
    python bench/sip_step.py --steps 2000,4000,6000 --duration 10 --targets kamailio
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import peers  # noqa: E402  (tests/e2e/peers.py: shared with the tests)

DEFAULT_STEPS = [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000, 12000, 14000, 16000,
                 20000, 25000, 30000]
OUT_DIR = ROOT / "bench" / "out"
# SIPp socket buffers (-buff_size), as large as the node's: SIPp's default (64 KB) drops datagram
# bursts on the generator side at a few thousand MESSAGE/s. The kernel caps it at net.core.rmem_max.
SIPP_BUFF = 8 * 1024 * 1024
# A clean step must also keep up: 200s per second of traffic time >= this share of the offered
# rate. Over TCP nothing is retransmitted, so a saturated node only shows as a falling rate.
MIN_ACHIEVED = 0.95
# CPU (in cores) that other processes may use during a step before it counts as disturbed
NOISE_CORES = 0.25


# --------------------------------------------------------------------------- results


@dataclass
class Step:
    offered_rate: int
    duration_s: float
    messages: int
    successful: int
    failed: int
    retrans_uac: int
    retrans_uas: int
    unexpected: int
    uas_received: int
    wall_s: float
    achieved_rate: float
    latency_ms: dict[str, float]
    node_cpu_s: float
    node_cpu_us_per_msg: float
    node_cpu_util: float
    sipp_cpu_util: float
    machine_busy: float
    other_cpu_util: float
    clean: bool
    note: str = ""


@dataclass
class TargetRun:
    name: str
    version: str = ""
    command: list[str] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)
    registered: int = 0
    steps: list[Step] = field(default_factory=list)
    # steps that were not clean while other processes loaded the machine, and were run again
    noisy_attempts: list[Step] = field(default_factory=list)
    max_clean_rate: int | None = None
    skipped: str | None = None
    error: str | None = None


# --------------------------------------------------------------------------- machine


def _cmd_out(argv: list[str], timeout: float = 20.0) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (proc.stdout + proc.stderr).decode("utf-8", errors="replace")


def machine_info() -> dict[str, object]:
    model = ""
    for line in _cmd_out(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    sipp_v = next((ln.strip() for ln in _cmd_out(["sipp", "-v"]).splitlines() if "SIPp v" in ln),
                  "")
    kam = peers.kamailio_binary()
    kam_v = _cmd_out([kam, "-v"]).splitlines()[0].strip() if kam else ""
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    rev = _cmd_out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip()
    if rev and _cmd_out(["git", "-C", str(ROOT), "status", "--porcelain", "fivegmc"]).strip():
        rev += "+uncommitted changes"
    return {
        "fivegmc_git": rev if rev and " " not in rev.split("+")[0] else "",
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sipp": sipp_v,
        "kamailio": kam_v,
        "fivegmc_event_loop_available": loop,
    }


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    values = [float(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    total = sum(values[:8])
    return total - idle, total


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------- Kamailio install


def ensure_kamailio(allow_install: bool) -> tuple[str | None, str]:
    """The kamailio binary, installing the Debian package when missing; or (None, why not)."""
    exe = peers.kamailio_binary()
    if exe:
        return exe, ""
    if not allow_install:
        return None, "kamailio is not installed (--no-install given)"
    if shutil.which("apt-get") is None:
        return None, "kamailio is not installed and apt-get is not available"
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return None, "kamailio is not installed; apt-get needs root and sudo is missing"
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("kamailio not found: installing the Debian package 'kamailio' with apt-get ...",
          flush=True)
    for argv in (
        [*prefix, "apt-get", "update", "-qq"],
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "kamailio"],
    ):
        try:
            proc = subprocess.run(argv, env=env, capture_output=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"installing kamailio failed: {exc}"
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip()[-400:]
            cmd = " ".join(argv)
            return None, f"installing kamailio failed ({cmd} rc={proc.returncode}): {tail}"
    exe = peers.kamailio_binary()
    return (exe, "") if exe else (None, "kamailio still not found after apt-get install")


def wait_quiet(node: peers.SipNode, max_wait: float, threshold: float = NOISE_CORES) -> float:
    """Wait (at most ``max_wait`` s) until the rest of the machine uses < ``threshold`` cores
    beside the idle node; returns the last measured foreign load, in cores."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, t0 = _cpu_times()
        n0 = node.cpu_seconds()
        w0 = time.monotonic()
        time.sleep(1.0)
        b1, t1 = _cpu_times()
        wall = time.monotonic() - w0
        cores = (b1 - b0) / max(1.0, t1 - t0) * (os.cpu_count() or 1)
        other = max(0.0, cores - (node.cpu_seconds() - n0) / wall)
        if other < threshold or time.monotonic() >= deadline:
            return other
        print(f"    machine busy ({other:.2f} cores used by other processes); waiting ...",
              flush=True)


# --------------------------------------------------------------------------- one step


def run_step(node: peers.SipNode, args: argparse.Namespace, work: Path, rate: int,
             ue_port: int, pairs_csv: Path, sipp_cpus: set[int] | None) -> Step:
    messages = round(rate * args.duration)
    # -rtt_freq must divide the call count, or SIPp drops the last partial batch of RTTs
    rtt_freq = next(f for f in (100, 50, 20, 10, 5, 2, 1) if messages % f == 0)
    uas_argv = peers.sipp_args("uas_message.xml", remote=None, local_port=ue_port,
                               transport=args.transport, buff_size=SIPP_BUFF,
                               extra=["-d", "2000"])
    uac_port = peers.free_port(exclude=[node.sip_port, ue_port, node.admin_port or 0])
    uac_argv = peers.sipp_args(
        "uac_message.xml", remote=(peers.LOCALHOST, node.sip_port), local_port=uac_port,
        transport=args.transport, inf=[pairs_csv], calls=messages, rate=rate,
        limit=max(1000, rate * 10), timeout_s=args.duration + 40, rtt=True, rtt_freq=rtt_freq,
        buff_size=SIPP_BUFF,
    )
    with peers.SippServer(uas_argv, work, cpus=sipp_cpus) as uas:
        busy0, total0 = _cpu_times()
        kids0 = _children_cpu()
        cpu0 = node.cpu_seconds()
        t0 = time.monotonic()
        uac = peers.run_sipp(uac_argv, work, timeout=args.duration + 50, cpus=sipp_cpus)
        wall = time.monotonic() - t0
        cpu1 = node.cpu_seconds()
        busy1, total1 = _cpu_times()
    ue = uas.stop()
    sipp_cpu = _children_cpu() - kids0  # UAC + UAS (both waited for by now)
    node_cpu = max(0.0, cpu1 - cpu0)
    ncpu = os.cpu_count() or 1
    busy = (busy1 - busy0) / max(1.0, total1 - total0) * ncpu  # in cores
    rtts = uac.rtts_ms
    latency = {
        "p50": peers.percentile(rtts, 50),
        "p90": peers.percentile(rtts, 90),
        "p99": peers.percentile(rtts, 99),
        "max": max(rtts) if rtts else float("nan"),
        "samples": float(len(rtts)),
    }
    # achieved: 200s received per second of SIPp's traffic time (its start to the last 200,
    # from the -trace_rtt dates), i.e. without process start-up and shutdown
    span = max(uac.rtt_dates_ms) / 1000.0 if uac.rtt_dates_ms else wall
    achieved = uac.successful / max(span, 1e-3) if uac.successful else 0.0
    clean = (
        uac.returncode == 0
        and uac.successful == messages
        and uac.failed == 0
        and uac.retransmissions == 0
        and ue.retransmissions == 0
        and uac.unexpected == 0
        and not uac.timed_out
        and achieved >= MIN_ACHIEVED * rate
    )
    notes = []
    if achieved < MIN_ACHIEVED * rate:
        notes.append(f"achieved < {MIN_ACHIEVED:.0%} of offered")
    if busy - (node_cpu + sipp_cpu) / max(wall, 1e-3) > NOISE_CORES:
        notes.append("other processes used CPU during the step")
    if not node.alive():
        notes.append("node died")
    if wall > args.duration * 1.25 + 1:
        notes.append(f"step took {wall:.1f}s")
    if ue.incoming != uac.successful:
        notes.append(f"UE saw {ue.incoming} calls")
    return Step(
        offered_rate=rate,
        duration_s=args.duration,
        messages=messages,
        successful=uac.successful,
        failed=uac.failed,
        retrans_uac=uac.retransmissions,
        retrans_uas=ue.retransmissions,
        unexpected=uac.unexpected + ue.unexpected,
        uas_received=ue.incoming,
        wall_s=round(wall, 3),
        achieved_rate=round(achieved, 1),
        latency_ms=latency,
        node_cpu_s=round(node_cpu, 3),
        node_cpu_us_per_msg=round(node_cpu / uac.successful * 1e6, 1) if uac.successful else 0.0,
        node_cpu_util=round(node_cpu / wall, 3) if wall > 0 else 0.0,
        sipp_cpu_util=round(sipp_cpu / wall, 3) if wall > 0 else 0.0,
        machine_busy=round(busy, 3),
        # CPU used by anything else on the machine during the step (noise from other work)
        other_cpu_util=round(max(0.0, busy - (node_cpu + sipp_cpu) / wall), 3) if wall > 0 else 0.0,
        clean=clean,
        note="; ".join(notes),
    )


# --------------------------------------------------------------------------- one target


def run_target(run: TargetRun, make_node: Callable[[Path], peers.SipNode],
               args: argparse.Namespace, steps: list[int], tmp: Path,
               report: Callable[[TargetRun, Step], None]) -> TargetRun:
    work = tmp / run.name
    work.mkdir(parents=True)
    node_cpus, sipp_cpus = _affinity(args)
    node = make_node(work)
    node.cpus = node_cpus
    run.command = node.argv
    users_csv = peers.write_users_csv(work / "users.csv", args.users)
    pairs_csv = peers.write_pairs_csv(work / "pairs.csv", args.users)
    ue_port = peers.free_port(exclude=[node.sip_port, node.admin_port or 0])
    try:
        with node:
            reg = peers.run_sipp(
                peers.sipp_args(
                    "register.xml", remote=(peers.LOCALHOST, node.sip_port), local_port=ue_port,
                    transport=args.transport, inf=[users_csv], calls=args.users,
                    rate=min(2000, args.users), timeout_s=60, buff_size=SIPP_BUFF,
                ),
                work, timeout=70, cpus=sipp_cpus,
            )
            run.registered = reg.successful
            if reg.successful != args.users or reg.failed:
                run.error = f"registration failed: {reg.summary()}\n{reg.errors_tail(1500)}"
                return run
            time.sleep(args.settle)
            for rate in steps:
                for attempt in range(args.retries + 1):
                    if args.quiet_wait > 0:
                        wait_quiet(node, args.quiet_wait)
                    step = run_step(node, args, work, rate, ue_port, pairs_csv, sipp_cpus)
                    noisy = step.other_cpu_util > NOISE_CORES
                    if step.clean or not noisy or attempt == args.retries or not node.alive():
                        break
                    run.noisy_attempts.append(step)
                    report(run, step)
                    print("    not clean while other processes used the CPUs: running the step "
                          "again", flush=True)
                    time.sleep(args.settle)
                run.steps.append(step)
                report(run, step)
                if step.clean:
                    run.max_clean_rate = rate
                if not step.clean or not node.alive():
                    break
                time.sleep(args.settle)
    except (RuntimeError, TimeoutError, OSError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        node.stop()
    if run.error and node.stderr_path.exists():
        run.error += "\n" + node.logs()[-1500:]
    return run


def _affinity(args: argparse.Namespace) -> tuple[set[int] | None, set[int] | None]:
    ncpu = os.cpu_count() or 1
    if not args.pin or ncpu < 2:
        return None, None
    return {0}, set(range(1, ncpu))


# --------------------------------------------------------------------------- output


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:g}"  # NaN check


def print_step(run: TargetRun, s: Step) -> None:
    lat = s.latency_ms
    print(
        f"  {run.name:9} {s.offered_rate:>6}/s -> {s.achieved_rate:>8.1f}/s  "
        f"failed={s.failed} retrans={s.retrans_uac}+{s.retrans_uas} "
        f"p50/p90/p99/max={_fmt(lat['p50'])}/{_fmt(lat['p90'])}/{_fmt(lat['p99'])}/"
        f"{_fmt(lat['max'])} ms  cpu={s.node_cpu_us_per_msg:.0f} us/msg "
        f"node={s.node_cpu_util * 100:.0f}% sipp={s.sipp_cpu_util * 100:.0f}% "
        f"other={s.other_cpu_util * 100:.0f}%  "
        f"{'clean' if s.clean else 'NOT clean'} {s.note}",
        flush=True,
    )


def print_table(runs: list[TargetRun], machine: dict[str, object], pinned: bool) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text is already printed step by step
        return
    table = Table(title="SIP MESSAGE routing, stepped rate (SIPp uac_message.xml -> node -> UAS)")
    for col in ("target", "offered/s", "achieved/s", "failed", "retrans", "p50 ms", "p90 ms",
                "p99 ms", "max ms", "CPU us/msg", "node CPU", "SIPp CPU", "other CPU", "clean"):
        table.add_column(col, justify="right" if col not in ("target", "clean") else "left")
    for run in runs:
        for s in run.steps:
            lat = s.latency_ms
            table.add_row(
                run.name, str(s.offered_rate), f"{s.achieved_rate:.0f}", str(s.failed),
                str(s.retrans_uac + s.retrans_uas), _fmt(lat["p50"]), _fmt(lat["p90"]),
                _fmt(lat["p99"]), _fmt(lat["max"]), f"{s.node_cpu_us_per_msg:.0f}",
                f"{s.node_cpu_util * 100:.0f}%", f"{s.sipp_cpu_util * 100:.0f}%",
                f"{s.other_cpu_util * 100:.0f}%", "yes" if s.clean else "NO",
            )
    width = shutil.get_terminal_size((160, 40)).columns if sys.stdout.isatty() else 160
    Console(width=max(width, 130)).print(table)


def summary_lines(runs: list[TargetRun], machine: dict[str, object], pinned: bool,
                  args: argparse.Namespace) -> list[str]:
    lines = [
        f"machine: {machine['cpu_model']}, {machine['cpus']} CPU cores, kernel "
        f"{machine['kernel']}; {machine['sipp']}; {machine['kamailio'] or 'no kamailio'}",
        (
            "placement: node pinned to CPU 0, SIPp UAC+UAS to the other core(s)"
            if pinned
            else f"placement: nothing pinned - SIPp UAC and UAS share the {machine['cpus']} "
            "cores with the node under test"
        ),
        f"load: {args.users} registered users, {args.transport.upper()}, "
        f"{args.duration:g} s per step; clean = 0 failed calls, 0 retransmissions and achieved >= "
        f"{MIN_ACHIEVED:.0%} of offered (achieved = 200s per second of SIPp traffic time)",
        "latency: SIPp per-call MESSAGE->200 response time (whole milliseconds, SIPp's clock); "
        "CPU % = cores x 100 (node, SIPp UAC+UAS, everything else on the machine)",
    ]
    best: dict[str, int | None] = {}
    for run in runs:
        if run.skipped:
            lines.append(f"{run.name}: skipped - {run.skipped}")
            continue
        if run.error:
            lines.append(f"{run.name}: ERROR - {run.error.splitlines()[0]}")
        cpu = [s.node_cpu_us_per_msg for s in run.steps if s.clean]
        lines.append(
            f"{run.name}: max clean rate = "
            f"{run.max_clean_rate if run.max_clean_rate is not None else 'none'} MESSAGE/s"
            + (f"; CPU per routed MESSAGE at clean steps {min(cpu):.0f}-{max(cpu):.0f} us"
               if cpu else "")
        )
        if run.noisy_attempts:
            lines.append(f"{run.name}: {len(run.noisy_attempts)} disturbed step(s) run again "
                         "(other processes used the CPUs); see noisy_attempts in the JSON")
        disturbed = [s.offered_rate for s in run.steps if s.other_cpu_util > NOISE_CORES]
        if disturbed:
            lines.append(f"{run.name}: steps still disturbed by other processes: {disturbed}")
        best[run.name] = run.max_clean_rate
    f, k = best.get("fivegmc"), best.get("kamailio")
    if f and k:
        lines.append(f"ratio fivegmc / Kamailio max clean rate (same run): {f / k:.2f}")
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="sip_step.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--targets", default="fivegmc,kamailio",
                    help="comma-separated: fivegmc, kamailio (default: both)")
    ap.add_argument("--steps", default=None,
                    help="comma-separated offered rates in MESSAGE/s "
                    f"(default {','.join(map(str, DEFAULT_STEPS))}); stepping stops at the first "
                    "step that is not clean")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds per step (default 20; 3 with --quick)")
    ap.add_argument("--users", type=int, default=None,
                    help="registered users (default 1000; 200 with --quick)")
    ap.add_argument("--settle", type=float, default=None,
                    help="pause between steps in seconds (default 3; 1 with --quick)")
    ap.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    ap.add_argument("--retries", type=int, default=2,
                    help="run a step again (up to this many times) when it was not clean while "
                    f"other processes used > {NOISE_CORES} core (default 2)")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="before each step wait up to this many seconds for other processes to "
                    "leave the CPUs alone (< 0.25 core); 0 = do not wait (default 60)")
    ap.add_argument("--quick", action="store_true", help="smoke run: short steps, fewer users")
    ap.add_argument("--pin", action="store_true",
                    help="pin the node to CPU 0 and SIPp (UAC+UAS) to the other cores "
                    "(default: no pinning, SIPp shares all cores with the node)")
    ap.add_argument("--kamailio-children", type=int, default=2,
                    help="Kamailio UDP/TCP worker processes (default 2: one per core here)")
    ap.add_argument("--no-install", action="store_true",
                    help="do not apt-get install kamailio when it is missing")
    ap.add_argument("--profile", type=Path, default=None, help="fivegmc profile (default lab)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="extra `fivegmc run --set` overrides (repeatable)")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="directory for the JSON result")
    args = ap.parse_args(argv)
    if args.duration is None:
        args.duration = 3.0 if args.quick else 20.0
    if args.users is None:
        args.users = 200 if args.quick else 1000
    if args.settle is None:
        args.settle = 1.0 if args.quick else 3.0
    if args.users < 2 or args.users > peers.SUBSCRIBER_COUNT:
        ap.error(f"--users must be 2..{peers.SUBSCRIBER_COUNT}")
    if args.duration <= 0:
        ap.error("--duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    steps = [int(x) for x in args.steps.split(",")] if args.steps else list(DEFAULT_STEPS)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - {"fivegmc", "kamailio"}
    if unknown:
        print(f"unknown target(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if peers.sipp_binary() is None:
        print("sipp is not installed (Debian package sip-tester; `make sysdeps` installs it)",
              file=sys.stderr)
        return 2

    runs: list[TargetRun] = []
    kamailio_exe: str | None = None
    kamailio_why = ""
    if "kamailio" in targets:
        kamailio_exe, kamailio_why = ensure_kamailio(not args.no_install)
    machine = machine_info()
    pinned = bool(args.pin and (os.cpu_count() or 1) >= 2)
    started = datetime.now(UTC)
    print(f"sip_step: targets={','.join(targets)} steps={steps} duration={args.duration:g}s "
          f"users={args.users} transport={args.transport}")
    for line in summary_lines([], machine, pinned, args)[:2]:
        print(line)

    with TemporaryDirectory(prefix="fivegmc-sip-step-") as tmpname:
        tmp = Path(tmpname)
        for name in targets:
            run = TargetRun(name=name)
            runs.append(run)
            if name == "fivegmc":
                run.version = _cmd_out([*peers.fivegmc_command(), "--version"]).strip()[:80]
                run.settings = {"profile": str(args.profile or "embedded lab"),
                                "sets": args.sets}

                def make_fivegmc(work: Path) -> peers.SipNode:
                    return peers.fivegmc_node(work / "node", extra_sets=args.sets,
                                              profile=args.profile)

                run_target(run, make_fivegmc, args, steps, tmp, print_step)
            else:
                if kamailio_exe is None:
                    run.skipped = kamailio_why
                    print(f"kamailio: skipped - {kamailio_why}", flush=True)
                    continue
                run.version = str(machine["kamailio"])
                run.settings = {"config": str(peers.KAMAILIO_CFG.relative_to(ROOT)),
                                "children": args.kamailio_children}
                def make_kamailio(work: Path, exe: str = kamailio_exe) -> peers.SipNode:
                    return peers.kamailio_node(work / "node", children=args.kamailio_children,
                                               binary=exe)

                run_target(run, make_kamailio, args, steps, tmp, print_step)
            if run.error:
                print(f"{name}: ERROR {run.error}", flush=True)

    print_table(runs, machine, pinned)
    lines = summary_lines(runs, machine, pinned, args)
    for line in lines:
        print(line)

    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"sip_step-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    result = {
        "benchmark": "sip_step",
        "started": started.isoformat(),
        "command": [sys.executable, *sys.argv],
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "steps": steps,
        "machine": machine,
        "pinned": pinned,
        "runs": [asdict(r) for r in runs],
        "summary": lines,
    }
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"result: {out}")
    return 0 if all(r.error is None for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
