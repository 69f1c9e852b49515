"""Write the SIPp injection files for the scenarios in this directory.

    python bench/sipp/gen_csv.py --users 1000 --out /tmp/fivegmc-sipp

writes ``users.csv`` (for register.xml) and ``pairs.csv`` (sender/recipient pairs for
uac_message.xml and options.xml) into ``--out``. The files are generated at run time; none is
committed. The code lives in ``tests/e2e/peers.py`` (shared with the tests and bench/sip_step.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "e2e"))

import peers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=1000, help="number of users (default 1000)")
    ap.add_argument("--first", type=int, default=0,
                    help="index of the first user: +8613800000000 + FIRST (default 0)")
    ap.add_argument("--pairs", type=int, default=None,
                    help="sender/recipient lines in pairs.csv (default: one per user)")
    ap.add_argument("--domain", default=peers.HOME_DOMAIN, help="home domain")
    ap.add_argument("--seed", type=int, default=5, help="seed for the recipient choice")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    users = peers.write_users_csv(args.out / "users.csv", args.users, args.first, args.domain)
    pairs = peers.write_pairs_csv(args.out / "pairs.csv", args.users, args.pairs, args.first,
                                  args.domain, args.seed)
    print(users)
    print(pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
