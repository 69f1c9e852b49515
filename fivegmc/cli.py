"""The ``fivegmc`` command line."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from . import __version__
from .config import Profile, ProfileError, load_profile
from .net.loop import loop_factory, tune_gc
from .node import Node

_PROFILE_HELP = "Profile TOML (default: the embedded profiles/lab.toml)."
_SET_HELP = "Override a profile key, e.g. --set sip.udp_port=5070 (repeatable)."


@click.group()
@click.version_option(__version__, prog_name="fivegmc")
def main() -> None:
    """fivegmc: a lab simulator of a China 5G Message network (5GMC, MaaP, SMS, NNI)."""


@main.command()
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False), help=_PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
def run(profile_path: str | None, overrides: tuple[str, ...]) -> None:
    """Run the simulator in the foreground until Ctrl-C or SIGTERM."""
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


if __name__ == "__main__":
    main()
