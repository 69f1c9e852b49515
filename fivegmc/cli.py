"""The ``fivegmc`` command line."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from . import __version__
from .config import ELEMENTS, Profile, ProfileError, load_profile
from .net.loop import loop_factory, tune_gc
from .node import Node

_PROFILE_HELP = "Profile TOML (default: the embedded profiles/lab.toml)."
_SET_HELP = "Override a profile key, e.g. --set sip.udp_port=5070 (repeatable)."
_ELEMENT_HELP = ("Run only this network element (repeatable; default: the profile's "
                 "[node] elements, all three): center (5GMC), maap, smsc.")


@click.group()
@click.version_option(__version__, prog_name="fivegmc")
def main() -> None:
    """fivegmc: a lab simulator of a China 5G Message network (5GMC, MaaP, SMS, NNI)."""


@main.command()
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False), help=_PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--element", "elements", multiple=True, type=click.Choice(ELEMENTS),
              help=_ELEMENT_HELP)
def run(profile_path: str | None, overrides: tuple[str, ...], elements: tuple[str, ...]) -> None:
    """Run the simulator in the foreground until Ctrl-C or SIGTERM."""
    if elements:
        chosen = ", ".join(f'"{e}"' for e in dict.fromkeys(elements))
        overrides = (*overrides, f"node.elements=[{chosen}]")
    try:
        profile = load_profile(profile_path, overrides)
    except ProfileError as exc:
        click.echo(f"fivegmc: {exc}", err=True)
        sys.exit(2)
    factory, loop_name = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            runner.run(_serve(profile, loop_name))
        except OSError as exc:
            click.echo(f"fivegmc: cannot start: {exc}", err=True)
            sys.exit(1)


async def _serve(profile: Profile, loop_name: str) -> None:
    node = Node(profile)
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    try:
        for endpoint in await node.start():
            click.echo(f"listening {endpoint}")
        click.echo(f"store {node.store_description}")
        if node.elements != list(ELEMENTS):
            click.echo(f"elements {' '.join(node.elements)}")
        click.echo(f"operator {profile.operator.name} domain {profile.operator.home_domain} "
                   f"loop {loop_name}")
        tune_gc()
        click.echo("ready")
        sys.stdout.flush()
        await node.run()
    except asyncio.CancelledError:
        click.echo("stopping")
    finally:
        await node.close()


@main.group()
def profile() -> None:
    """Profile tools."""


@profile.command("check")
@click.argument("path", type=click.Path(dir_okay=False), required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
def profile_check(path: str | None, overrides: tuple[str, ...]) -> None:
    """Validate a profile and print what it decodes to."""
    try:
        prof = load_profile(path, overrides)
    except ProfileError as exc:
        click.echo(f"fivegmc: {exc}", err=True)
        sys.exit(2)
    import msgspec

    click.echo(msgspec.json.format(msgspec.json.encode(prof), indent=2).decode())


@main.group()
def cdr() -> None:
    """Charging data record (CDR) files."""


@cdr.command("dump")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--allow-truncated", is_flag=True,
              help="Warn about a file cut inside its last record (a crash) instead of failing.")
def cdr_dump(paths: tuple[str, ...], allow_truncated: bool) -> None:
    """Print the records of CDR FILE... as JSON lines, in the order given."""
    from .obs.cdr import CdrFileError, dump

    try:
        dump(paths, sys.stdout, on_truncated="warn" if allow_truncated else "raise")
    except CdrFileError as exc:
        raise click.ClickException(str(exc)) from exc


@main.group()
def smsc() -> None:
    """The SMSC stub (SMPP): inject MO SMS, list the MT inbox (through the admin API)."""


_ADMIN_HELP = "Admin HTTP base URL (default: http://127.0.0.1:9090, the lab profile's)."


def _admin_call(url: str, body: bytes | None = None) -> object:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise click.ClickException(f"{url}: HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"{url}: {exc}") from exc


@smsc.command("mo")
@click.option("--from", "source", required=True, help="Sender (the handset's number).")
@click.option("--to", "dest", required=True, help="Recipient (service number / short code).")
@click.option("--system-id", default=None, help="Only deliver to binds of this ESME account.")
@click.option("--admin", "admin_url", default="http://127.0.0.1:9090", help=_ADMIN_HELP)
@click.argument("text")
def smsc_mo(source: str, dest: str, system_id: str | None, admin_url: str, text: str) -> None:
    """Inject an MO SMS: sent as deliver_sm (segmented, GSM 7-bit or UCS-2) to bound ESMEs."""
    import json

    payload: dict[str, str] = {"from": source, "to": dest, "text": text}
    if system_id:
        payload["system_id"] = system_id
    answer = _admin_call(f"{admin_url.rstrip('/')}/admin/v1/smsc/mo",
                         json.dumps(payload).encode())
    click.echo(json.dumps(answer))


@smsc.command("messages")
@click.option("--to", "dest", default=None, help="Only messages to this number.")
@click.option("--from", "source", default=None, help="Only messages from this sender.")
@click.option("--admin", "admin_url", default="http://127.0.0.1:9090", help=_ADMIN_HELP)
def smsc_messages(dest: str | None, source: str | None, admin_url: str) -> None:
    """List MT SMS as the handsets received them (newest first), as JSON."""
    import json
    import urllib.parse

    query = urllib.parse.urlencode({k: v for k, v in (("to", dest), ("from", source)) if v})
    answer = _admin_call(f"{admin_url.rstrip('/')}/admin/v1/smsc/messages"
                         + (f"?{query}" if query else ""))
    click.echo(json.dumps(answer, ensure_ascii=False, indent=2))

if __name__ == "__main__":
    main()
