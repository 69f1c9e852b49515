"""Helpers for tests and benchmarks that drive real peer programs (SIPp, tshark, Kamailio).

Shared by ``tests/e2e/test_sipp.py``, ``tests/e2e/test_tshark.py`` and ``bench/sip_step.py``:

- free-port picking on 127.0.0.1 (a port free for both UDP and TCP);
- injection CSV files for the SIPp scenarios in ``bench/sipp/``;
- starting / stopping ``fivegmc run`` (and Kamailio) as a subprocess, always torn down;
- running SIPp in the foreground (bounded by a timeout) or in the background (UAS), and parsing
  its ``-trace_stat`` and ``-trace_rtt`` files;
- CPU time of a process tree from ``/proc``;
- a tshark capture on the loopback interface.

Every process started here is ended by its own id (or its own process group) in ``stop()`` /
``__exit__``; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import pytest

REPO = Path(__file__).resolve().parents[2]
SIPP_DIR = REPO / "bench" / "sipp"
KAMAILIO_CFG = REPO / "bench" / "kamailio" / "kamailio.cfg"
HOME_DOMAIN = "ims.mnc000.mcc460.3gppnetwork.org"
# +8613800000000 .. +8613800099999 are 5G-message (RCS) subscribers in profiles/lab.toml.
FIRST_SUBSCRIBER = 8613800000000
SUBSCRIBER_COUNT = 100_000
LOCALHOST = "127.0.0.1"


# --------------------------------------------------------------------------- ports


def free_port(exclude: Sequence[int] = (), attempts: int = 200) -> int:
    """A port on 127.0.0.1 that is free for both UDP and TCP right now."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOCALHOST, 0))
            port = int(tcp.getsockname()[1])
            if port in exclude:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((LOCALHOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free UDP+TCP port found on 127.0.0.1")


def free_ports(count: int, exclude: Sequence[int] = ()) -> list[int]:
    """``count`` distinct ports, each free for UDP and TCP, none of them in ``exclude``."""
    ports: list[int] = []
    for _ in range(count):
        ports.append(free_port(exclude=[*exclude, *ports]))
    return ports


# --------------------------------------------------------------------------- CSV files


def subscriber(index: int) -> str:
    """The E.164 number (with '+') of lab subscriber ``index`` (0 .. 99,999)."""
    if not 0 <= index < SUBSCRIBER_COUNT:
        raise ValueError(f"subscriber index {index} outside 0..{SUBSCRIBER_COUNT - 1}")
    return f"+{FIRST_SUBSCRIBER + index}"


def aor(index: int, domain: str = HOME_DOMAIN) -> str:
    return f"sip:{subscriber(index)}@{domain}"


def write_users_csv(path: Path, users: int, first: int = 0, domain: str = HOME_DOMAIN) -> Path:
    """Injection file for ``register.xml``: ``number;domain;`` per line, read sequentially."""
    lines = ["SEQUENTIAL"]
    lines += [f"{subscriber(first + i)};{domain};" for i in range(users)]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def write_pairs_csv(
    path: Path,
    users: int,
    pairs: int | None = None,
    first: int = 0,
    domain: str = HOME_DOMAIN,
    seed: int = 5,
) -> Path:
    """Injection file for ``uac_message.xml`` / ``options.xml``.

    ``sender;recipient;domain;datetime;conversation-id;run-token;`` per line: ``pairs`` lines
    (default: one per user), each sender a different user from its recipient, both among the
    ``users`` registered ones. SIPp reads the lines in order and wraps around.
    """
    if users < 2:
        raise ValueError("need at least 2 users to make sender/recipient pairs")
    count = users if pairs is None else pairs
    rng = random.Random(seed)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run_token = uuid.uuid4().hex[:12]
    lines = ["SEQUENTIAL"]
    for i in range(count):
        sender = i % users
        recipient = (sender + 1 + rng.randrange(users - 1)) % users
        conv = uuid.UUID(int=rng.getrandbits(128), version=4)
        lines.append(
            f"{subscriber(first + sender)};{subscriber(first + recipient)};{domain};{now};"
            f"{conv};{run_token};"
        )
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


# --------------------------------------------------------------------------- processes


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        data = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return data[-chars:]


def _stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 8.0,
                  group: bool = False) -> int | None:
    """Stop ``proc`` (by pid, or its own process group): ``sig``, wait, then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            proc.wait(timeout=5)
    elif group:
        # the leader is gone; make sure no child of its group survives
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


def _pin(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child (and what it forks later) to ``cpus``, or None."""
    if not cpus:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def wait_sip_ready(port: int, timeout: float = 10.0, host: str = LOCALHOST) -> None:
    """Wait until something answers a SIP OPTIONS on UDP ``host:port`` (any response)."""
    deadline = time.monotonic() + timeout
    n = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        lport = sock.getsockname()[1]
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            n += 1
            req = (
                f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{lport};branch=z9hG4bK-probe{n}-{os.getpid()}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{host}>;tag=probe{n}\r\n"
                f"To: <sip:{host}:{port}>\r\n"
                f"Call-ID: probe{n}-{os.getpid()}@{host}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            with contextlib.suppress(OSError):
                sock.sendto(req, (host, port))
            try:
                data = sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            if data.startswith(b"SIP/2.0 "):
                return
    raise TimeoutError(f"no SIP answer on udp {host}:{port} within {timeout} s")


def fivegmc_command() -> list[str]:
    """How to start the node: the venv's ``fivegmc`` script, else ``fivegmc.cli:main``."""
    script = Path(sys.executable).with_name("fivegmc")
    if script.exists():
        return [str(script)]
    found = shutil.which("fivegmc")
    if found:
        return [found]
    return [sys.executable, "-c", "from fivegmc.cli import main; main()"]


class ProcessTree:
    """CPU accounting of a process and all its descendants (Linux ``/proc``)."""

    CLK_TCK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid: int) -> None:
        self.pid = pid

    @staticmethod
    def _stat(pid: int) -> tuple[int, int, int] | None:
        """(ppid, utime, stime) in clock ticks, or None when the process is gone."""
        try:
            raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        rest = raw[raw.rfind(")") + 2 :].split()
        # rest[0] is field 3 (state): ppid = field 4, utime = 14, stime = 15
        return int(rest[1]), int(rest[11]), int(rest[12])

    def pids(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            st = self._stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def cpu_seconds(self) -> float:
        """utime + stime of the process and its live descendants, in seconds."""
        ticks = 0
        for pid in self.pids():
            st = self._stat(pid)
            if st is not None:
                ticks += st[1] + st[2]
        return ticks / self.CLK_TCK


@dataclass
class SipNode:
    """A SIP node under test running as a subprocess (fivegmc or Kamailio)."""

    name: str
    argv: list[str]
    sip_port: int
    workdir: Path
    ready_line: str | None = "ready"
    admin_port: int | None = None
    start_timeout: float = 20.0
    cpus: set[int] | None = None
    proc: subprocess.Popen[bytes] | None = None
    listening: list[str] = field(default_factory=list)

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"{self.name}.stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"{self.name}.stderr.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "node not started"
        return self.proc.pid

    def start(self) -> SipNode:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_pin(self.cpus),
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while self.ready_line is None:
            # no start-up line to wait for: probe the SIP port until it answers
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before answering SIP"
                    f"\n{self.logs()}"
                )
            try:
                wait_sip_ready(self.sip_port, timeout=min(1.0, self.start_timeout))
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{self.name} did not answer SIP on udp port {self.sip_port} within "
                        f"{self.start_timeout} s\n{self.logs()}"
                    ) from None
        while time.monotonic() < deadline:
            lines = self.stdout_path.read_text(encoding="utf-8", errors="replace").splitlines()
            if self.ready_line in (line.strip() for line in lines):
                self.listening = [ln.strip() for ln in lines if ln.startswith("listening")]
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before '{self.ready_line}'"
                    f"\n--- stdout ---\n{_tail(self.stdout_path)}"
                    f"\n--- stderr ---\n{_tail(self.stderr_path)}"
                )
            time.sleep(0.05)
        raise TimeoutError(
            f"{self.name} printed no '{self.ready_line}' line within {self.start_timeout} s"
            f"\n--- stdout ---\n{_tail(self.stdout_path)}"
            f"\n--- stderr ---\n{_tail(self.stderr_path)}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        return ProcessTree(self.pid).cpu_seconds()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        return _stop_process(self.proc, signal.SIGTERM, grace=10.0, group=True)

    def logs(self) -> str:
        return (
            f"--- {self.name} stdout ---\n{_tail(self.stdout_path)}\n"
            f"--- {self.name} stderr ---\n{_tail(self.stderr_path)}"
        )

    def __enter__(self) -> SipNode:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def fivegmc_node(workdir: Path, extra_sets: Sequence[str] = (), profile: Path | None = None,
                 log_level: str = "WARNING") -> SipNode:
    """A ``fivegmc run`` on free SIP (UDP+TCP) and admin ports of 127.0.0.1 (not started)."""
    sip_port, admin_port = free_ports(2)
    argv = [*fivegmc_command(), "run"]
    if profile is not None:
        argv += ["--profile", str(profile)]
    sets = [
        f"sip.udp_port={sip_port}",
        f"sip.tcp_port={sip_port}",
        f"admin.port={admin_port}",
        f"log.level={log_level}",
        f"store.path={workdir / 'store.db'}",  # the node's SQLite store lives in the workdir
        f"cdr.dir={workdir / 'cdr'}",
        # the MaaP and the SMSC stub of the same profile: ephemeral ports, files in the workdir
        "maap.port=0", "maap.sip_port=0", f"maap.data_dir={workdir / 'maap'}", "smsc.port=0",
        *extra_sets,
    ]
    for item in sets:
        argv += ["--set", item]
    return SipNode("fivegmc", argv, sip_port, workdir, ready_line="ready", admin_port=admin_port)


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or next(
        (p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio") if Path(p).exists()), None
    )


def kamailio_node(workdir: Path, children: int = 2, binary: str | None = None,
                  shm_mb: int = 1024, pkg_mb: int = 16) -> SipNode:
    """Kamailio with ``bench/kamailio/kamailio.cfg`` on a free port of 127.0.0.1 (not started)."""
    exe = binary or kamailio_binary()
    if exe is None:
        raise FileNotFoundError("kamailio is not installed")
    port = free_port()
    argv = [
        exe, "-f", str(KAMAILIO_CFG), "-DD", "-E",
        "-A", f"BENCH_PORT={port}", "-A", f"BENCH_CHILDREN={children}",
        "-m", str(shm_mb), "-M", str(pkg_mb),
        "-P", str(workdir / "kamailio.pid"), "-Y", str(workdir),
    ]  # fmt: skip
    return SipNode("kamailio", argv, port, workdir, ready_line=None)


# --------------------------------------------------------------------------- SIPp


def sipp_binary() -> str | None:
    return shutil.which("sipp")


@dataclass
class SippResult:
    """Outcome of one SIPp run: exit code, last statistics row, per-call response times."""

    scenario: str
    returncode: int
    stats: dict[str, str]
    rtts_ms: list[float]
    workdir: Path
    argv: list[str]
    elapsed_s: float
    timed_out: bool = False
    rtt_dates_ms: list[float] = field(default_factory=list)

    def count(self, column: str) -> int:
        """A cumulative counter, e.g. ``count("FailedCall")`` reads ``FailedCall(C)``."""
        key = column if column in self.stats else f"{column}(C)"
        raw = self.stats.get(key, "")
        try:
            return int(float(raw))
        except ValueError:
            return 0

    @property
    def failed(self) -> int:
        return self.count("FailedCall")

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall")

    @property
    def retransmissions(self) -> int:
        return self.count("Retransmissions")

    @property
    def unexpected(self) -> int:
        return self.count("FailedUnexpectedMessage") + self.count("OutOfCallMsgs")

    @property
    def created(self) -> int:
        return self.count("TotalCallCreated")

    @property
    def incoming(self) -> int:
        return self.count("IncomingCall")

    def summary(self) -> str:
        return (
            f"{self.scenario}: rc={self.returncode} created={self.created} "
            f"ok={self.successful} failed={self.failed} retrans={self.retransmissions} "
            f"unexpected={self.unexpected} dead={self.count('DeadCallMsgs')} "
            f"elapsed={self.elapsed_s:.2f}s timed_out={self.timed_out}"
        )

    def errors_tail(self, chars: int = 3000) -> str:
        out = []
        for path in sorted(self.workdir.glob(f"{Path(self.scenario).stem}_*errors.log")):
            out.append(f"--- {path.name} ---\n{_tail(path, chars)}")
        return "\n".join(out)


def sipp_args(
    scenario: str,
    *,
    remote: tuple[str, int] | None,
    local_port: int,
    transport: str = "udp",
    inf: Sequence[Path] = (),
    calls: int | None = None,
    rate: float | None = None,
    rate_period_ms: int = 1000,
    limit: int | None = None,
    timeout_s: float | None = None,
    rtt: bool = False,
    rtt_freq: int = 1,
    stat_freq_s: int = 1,
    buff_size: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The SIPp command line for a scenario file of ``bench/sipp/``."""
    exe = sipp_binary()
    if exe is None:
        raise FileNotFoundError("sipp is not installed (Debian package sip-tester)")
    argv = [exe]
    if remote is not None:
        argv.append(f"{remote[0]}:{remote[1]}")
    argv += ["-sf", str(SIPP_DIR / scenario), "-i", LOCALHOST, "-p", str(local_port)]
    argv += ["-t", {"udp": "u1", "tcp": "t1"}[transport]]
    for path in inf:
        argv += ["-inf", str(path)]
    if calls is not None:
        argv += ["-m", str(calls)]
    if rate is not None:
        argv += ["-r", f"{rate:g}", "-rp", str(rate_period_ms)]
    if limit is not None:
        argv += ["-l", str(limit)]
    if timeout_s is not None:
        argv += ["-timeout", f"{int(timeout_s)}s", "-timeout_error"]
    argv += ["-trace_stat", "-fd", str(stat_freq_s), "-trace_err", "-nostdin"]
    if rtt:
        argv += ["-trace_rtt", "-rtt_freq", str(rtt_freq)]
    if buff_size is not None:
        argv += ["-buff_size", str(buff_size)]  # socket buffers (capped by net.core.*mem_max)
    argv += list(extra)
    return argv


def _read_stats(workdir: Path, stem: str, pid: int) -> dict[str, str]:
    path = workdir / f"{stem}_{pid}_.csv"
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    if len(rows) < 2:
        return {}
    header, last = rows[0], rows[-1]
    return {name: value for name, value in zip(header, last, strict=False) if name}


def _read_rtts(workdir: Path, stem: str, pid: int) -> tuple[list[float], list[float]]:
    """(response times, their dates) in ms from SIPp's ``-trace_rtt`` file; dates count from
    SIPp's start."""
    path = workdir / f"{stem}_{pid}_rtt.csv"
    if not path.exists():
        return [], []
    rtts: list[float] = []
    dates: list[float] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.strip().split(";")
            if len(parts) >= 2:
                try:
                    date, rtt = float(parts[0]), float(parts[1])
                except ValueError:
                    continue  # the header line
                rtts.append(rtt)
                dates.append(date)
    return rtts, dates


def collect(scenario: str, workdir: Path, pid: int, rc: int, argv: list[str], elapsed: float,
            timed_out: bool = False) -> SippResult:
    stem = Path(scenario).stem
    rtts, dates = _read_rtts(workdir, stem, pid)
    return SippResult(
        scenario=scenario,
        returncode=rc,
        stats=_read_stats(workdir, stem, pid),
        rtts_ms=rtts,
        rtt_dates_ms=dates,
        workdir=workdir,
        argv=argv,
        elapsed_s=elapsed,
        timed_out=timed_out,
    )


def run_sipp(argv: list[str], workdir: Path, timeout: float,
             cpus: set[int] | None = None) -> SippResult:
    """Run SIPp in the foreground in ``workdir`` (where it writes its files), bounded."""
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = argv[argv.index("-sf") + 1]
    t0 = time.monotonic()
    with (workdir / f"{Path(scenario).stem}.screen.log").open("ab") as out:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_pin(cpus))
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # SIGUSR1 = SIPp's graceful quit (it writes the final statistics row)
            _stop_process(proc, signal.SIGUSR1, grace=5.0)
    rc = proc.returncode if proc.returncode is not None else -1
    return collect(Path(scenario).name, workdir, proc.pid, rc, argv, time.monotonic() - t0,
                   timed_out)


class SippServer:
    """A background SIPp (e.g. the UAS); ``stop()`` quits it gracefully and reads its stats."""

    def __init__(self, argv: list[str], workdir: Path, ready_timeout: float = 5.0,
                 cpus: set[int] | None = None) -> None:
        self.argv = argv
        self.cpus = cpus
        self.workdir = workdir
        self.ready_timeout = ready_timeout
        self.scenario = Path(argv[argv.index("-sf") + 1]).name
        self.port = int(argv[argv.index("-p") + 1])
        self.tcp = "t1" in argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.t0 = 0.0
        self.result: SippResult | None = None

    def start(self) -> SippServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        with (self.workdir / f"{Path(self.scenario).stem}.screen.log").open("ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=_pin(self.cpus))
        try:
            self._wait_bound()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_bound(self) -> None:
        """Wait until SIPp has bound its port (seen in /proc/net), or fail if it exited."""
        assert self.proc is not None
        table = "/proc/net/tcp" if self.tcp else "/proc/net/udp"
        needle = f"0100007F:{self.port:04X}"
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                screen = self.workdir / f"{Path(self.scenario).stem}.screen.log"
                raise RuntimeError(f"sipp {self.scenario} exited early"
                                   f" rc={self.proc.returncode}: {_tail(screen)}")
            if needle in Path(table).read_text(encoding="ascii"):
                return
            time.sleep(0.02)
        raise TimeoutError(f"sipp {self.scenario} did not bind port {self.port}")

    def stop(self) -> SippResult:
        if self.result is not None:
            return self.result
        assert self.proc is not None
        _stop_process(self.proc, signal.SIGUSR1, grace=5.0)
        rc = self.proc.returncode if self.proc.returncode is not None else -1
        self.result = collect(self.scenario, self.workdir, self.proc.pid, rc, self.argv,
                              time.monotonic() - self.t0)
        return self.result

    def __enter__(self) -> SippServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 < pct <= 100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


# --------------------------------------------------------------------------- tshark


def tshark_binary() -> str | None:
    return shutil.which("tshark")


class TsharkCapture:
    """``tshark -i lo -f "port N [or port M ...]" -w FILE`` in the background until ``stop()``."""

    def __init__(self, ports: int | Sequence[int], pcap: Path, interface: str = "lo",
                 start_timeout: float = 15.0) -> None:
        exe = tshark_binary()
        if exe is None:
            raise FileNotFoundError("tshark is not installed")
        self.pcap = pcap
        self.log = pcap.with_suffix(".tshark.log")
        plist = [ports] if isinstance(ports, int) else list(ports)
        bpf = " or ".join(f"port {p}" for p in plist)
        self.argv = [exe, "-i", interface, "-f", bpf, "-w", str(pcap), "-q"]
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> TsharkCapture:
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        try:
            while time.monotonic() < deadline:
                if "Capturing on" in _tail(self.log):
                    return self
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"tshark exited rc={self.proc.returncode}: {_tail(self.log)}"
                    )
                time.sleep(0.05)
            raise TimeoutError(f"tshark did not start capturing: {_tail(self.log)}")
        except BaseException:
            self.stop()
            raise

    def stop(self, settle: float = 0.5) -> Path:
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(settle)  # let the last packets reach the capture buffer
            _stop_process(self.proc, signal.SIGINT, grace=10.0)
        return self.pcap

    def __enter__(self) -> TsharkCapture:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(settle=0.0)


def tshark_read(pcap: Path, display_filter: str, fields: Sequence[str] = (),
                decode_as: Sequence[str] = (), timeout: float = 60.0,
                extra: Sequence[str] = ()) -> list[list[str]]:
    """Packets of ``pcap`` matching ``display_filter``: one list of field values per packet
    (or the one-line summary when no ``fields`` are given)."""
    exe = tshark_binary()
    if exe is None:
        raise FileNotFoundError("tshark is not installed")
    argv = [exe, "-r", str(pcap), "-n"]
    for rule in decode_as:
        argv += ["-d", rule]
    argv += list(extra)
    argv += ["-Y", display_filter]
    if fields:
        argv += ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
        for name in fields:
            argv += ["-e", name]
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark {' '.join(argv)} failed rc={proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace')}")
    lines = proc.stdout.decode("utf-8", errors="replace").splitlines()
    return [line.split("\t") for line in lines if line.strip()]


#: pytest marks of every test that needs SIPp as a real peer (`make test` installs it).
SIPP_MARKS = (
    pytest.mark.peer,
    pytest.mark.e2e,
    pytest.mark.skipif(
        sipp_binary() is None,
        reason="sipp is not on PATH (Debian package sip-tester; `make test` installs it)",
    ),
)
#: ... and of those that also need tshark.
TSHARK_MARK = pytest.mark.skipif(
    tshark_binary() is None,
    reason="tshark is not on PATH (Debian package tshark; `make test` installs it)",
)
