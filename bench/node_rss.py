"""RSS of a whole ``fivegmc run`` node holding N registrations (issue 3 target: 1,000,000 in
≤ 1 GB). The registrations are written to a fresh SQLite store the way the node saves them
after each REGISTER (one binding per AoR, RCS feature tags), then a node is started on that
store with the embedded lab profile (5GMC + MaaP + SMSC stub) and restores them at start-up;
its RSS is read from /proc once it prints ``ready``.

    .venv/bin/python bench/node_rss.py                   # 1,000,000 registrations

Bounded; stops by itself (the node is stopped with SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fivegmc.store.protocol import StoredBinding
from fivegmc.store.sqlite import SqliteStore

TAGS = ('+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg";'
        '+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp"')


async def fill(path: Path, count: int) -> float:
    store = SqliteStore(str(path))
    await store.open()
    now = time.time()
    t0 = time.perf_counter()
    try:
        batch = []
        for i in range(count):
            number = f"+86138{i:08d}"
            host = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            batch.append(store.save_bindings(number, [StoredBinding(
                aor=number, contact=f"<sip:{number}@{host}:5060>;{TAGS}",
                contact_key=f"sip:{number}@{host}:5060", expires_at=now + 7000,
                call_id=f"c{i}", cseq=1, transport="udp", host=host, port=5060,
                registered_at=now)]))
            if len(batch) == 2000:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
    finally:
        await store.close()
    return time.perf_counter() - t0


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "store.db"
        took = asyncio.run(fill(db, args.count))
        print(f"wrote {args.count} registrations to {db.name} in {took:.1f} s", flush=True)
        sets = ["sip.udp_port=0", "sip.tcp_port=0", "admin.port=0", "maap.port=0",
                "maap.sip_port=0", f"maap.data_dir={tmp}/maap", "smsc.port=0",
                f"store.path={db}", f"cdr.dir={tmp}/cdr", "log.level=INFO"]
        argv = [sys.executable, "-m", "fivegmc", "run"]
        for s in sets:
            argv += ["--set", s]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "restored" in line:
                    print(line.strip()[:200])
                if line.strip() == "ready":
                    break
            else:
                raise SystemExit(f"node exited with {proc.wait()} before ready")
            started = time.perf_counter() - t0
            time.sleep(2.0)  # let start-up garbage settle
            rss, hwm = rss_kib(proc.pid, "VmRSS"), rss_kib(proc.pid, "VmHWM")
            print(f"node ready in {started:.1f} s holding {args.count} registrations: "
                  f"RSS {rss / 1024:.0f} MiB (peak {hwm / 1024:.0f} MiB), "
                  f"{rss * 1024 / args.count:.0f} bytes per registration incl. the node")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
