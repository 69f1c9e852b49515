"""RSS of the registrar holding N registrations (one binding per AoR, RCS feature tags).

    .venv/bin/python bench/registrations_rss.py              # 1,000,000 registrations

Each binding is made the way a REGISTER makes it (Contact parsed with its ICSI/IARI tags),
then the process's maximum RSS is read. Bounded; stops by itself.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

from fivegmc.config import RegistrarConfig
from fivegmc.core.registrar import Flow, Registrar
from fivegmc.sip.uri import parse_name_addr

TAGS = ('+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg";'
        '+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp"')


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    args = ap.parse_args()
    base = rss_mib()
    reg = Registrar(RegistrarConfig(max_expires=7200))
    t0 = time.perf_counter()
    for i in range(args.count):
        number = f"+86138{i:08d}"
        contact = parse_name_addr(f"<sip:{number}@10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
                                  f":5060>;{TAGS}")
        out = reg.register(number, [contact], expires_header=3600, call_id=f"c{i}", cseq=1,
                           flow=Flow("udp", "10.0.0.1", 5060 + i % 1000), now=0.0)
        assert out.status == 200
    elapsed = time.perf_counter() - t0
    gc.collect()
    total = rss_mib()
    print(f"{reg.binding_count} registrations in {elapsed:.1f} s "
          f"({reg.binding_count / elapsed:.0f}/s): max RSS {total:.0f} MiB "
          f"(interpreter and imports {base:.0f} MiB; "
          f"{(total - base) * 1024 * 1024 / reg.binding_count:.0f} bytes per registration)")


if __name__ == "__main__":
    main()
