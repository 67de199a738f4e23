"""The command line, `python -m helpers <command>`: the notebooks' steps as commands over the same helpers.

Each command calls the helpers the notebooks call, so the two never drift apart. Errors meant for a
person (WorkshopError, AWS errors, bad usage) print as one line on stderr, never as a traceback.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

import click
from botocore.exceptions import BotoCoreError, ClientError

from . import aws, chat, config, image, workshop
from .config import Settings
from .errors import WorkshopError, explain_aws_error

DEFAULT_ACTOR = "default_user"
PROG = "python -m helpers"


def _settings(target: str | None, region: str | None) -> Settings:
    return config.load(target=target, region=region)


def target_options(command: Callable) -> Callable:
    """--target and --region, as every command takes them, with the environment variables behind them."""
    command = click.option("--region", envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
                           help="AWS region, required with --target aws [env AWS_REGION, AWS_DEFAULT_REGION]")(command)
    return click.option("--target", type=click.Choice(config.TARGETS, case_sensitive=False), envvar="WORKSHOP_TARGET",
                        help="where to run: local (the emulator) or aws [env WORKSHOP_TARGET; default local]")(command)


def _print_table(title: str, df) -> None:
    from . import tables

    print(f"\n{title}")
    if df is None or len(df) == 0:
        print("  (none)")
        return
    print(tables.text(df, width=_width()))


def _width() -> int:
    """The terminal's width, so long values wrap within their column; in a pipe (no COLUMNS set), no limit,
    so that each row stays one line for grep and the like (as ls and git do)."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return shutil.get_terminal_size((100, 24)).columns
    return 100_000


_FENCE = re.compile(r"^```[^\n]*\n(.*?)(?:^```[ \t]*$\n?|\Z)", re.DOTALL | re.MULTILINE)


def terminal_text(text: str, indent: str = "    ") -> str:
    """Markdown fences (the agent's tool output) as indented blocks: a terminal does not render Markdown."""
    def block(match: re.Match) -> str:
        return "".join(f"{indent}{line}\n" for line in match.group(1).rstrip("\n").split("\n"))

    return _FENCE.sub(block, text).rstrip("\n")


# A fixed width: help reads the same in a terminal, a notebook and a pipe, with summaries left whole.
@click.group(context_settings={"help_option_names": ["-h", "--help"], "terminal_width": 120,
                               "max_content_width": 120})
def cli() -> None:
    """Command line for the workshop: the notebooks' steps as commands."""


@cli.command("workshop")
@target_options
@click.option("--only", metavar="NN,NN", help="run only these notebooks, by number or name (e.g. --only 00,01)")
@click.option("--notebooks", type=click.Path(path_type=Path), default=workshop.NOTEBOOKS_DIR, show_default=True,
              help="folder of the notebooks")
@click.option("--output", type=click.Path(path_type=Path), default=workshop.RUNS_DIR, show_default=True,
              help="folder for the executed copies")
@click.option("--cell-timeout", type=float, default=1800.0, show_default=True, help="seconds one cell may run")
@click.option("--stop-emulator", is_flag=True,
              help="stop the local emulator afterwards (by default it keeps running for JupyterLab)")
def workshop_command(target, region, only, notebooks, output, cell_timeout, stop_emulator) -> int:
    """Run every notebook in order in fresh kernels with papermill; stop at the first failure."""
    from . import aws

    try:
        runs = workshop.run_notebooks(target=target, region=region, only=only.split(",") if only else None,
                                      notebooks_dir=notebooks, output_dir=output, cell_timeout=cell_timeout)
    finally:
        if stop_emulator:
            settings = _settings(target, region)
            if settings.is_local and aws.stop_emulator(settings):
                print("Emulator stopped.")
    print()
    print(workshop.summary_table(runs))
    ok = all(r.status == "ok" for r in runs)
    if ok:
        print(f"\nAll {len(runs)} notebooks ran; executed copies are in {output}.")
    return 0 if ok else 1


@cli.command()
@target_options
@click.option("--build-method", type=click.Choice(image.METHODS), default="auto", show_default=True,
              help="how to build the agent image (auto says why it chose)")
def deploy(target, region, build_method) -> int:
    """Deploy the stack, create the memory once, build and push the image, create the runtime."""
    from . import memory, runtime, stack

    settings = _settings(target, region)
    deployed = stack.deploy_stack(settings)
    print(f"stack: {deployed}")
    created = memory.get_or_create_memory(settings)
    print(f"memory: {created['id']} ({created['status']})")
    build = image.build_and_push(settings, method=build_method)
    print(f"image: {build.image_uri} ({build.method}: {build.reason})")
    result = runtime.get_or_create_runtime(settings, image.latest_image_uri(settings))
    print(f"runtime: {result.agent_runtime_arn} {result.action}, {result.status}")
    print(f'\nNext: {PROG} invoke "{chat.STAND_IN_CUES[0][0]}"')
    return 0


# \b keeps click from re-wrapping the lines of the list.
INVOKE_EPILOG = ("\b\nLocally the agent talks to local-stand-in, a deterministic test double (not a language model).\n"
                 "It acts on these cues, and otherwise replies that it cannot reason:\n"
                 + chat.stand_in_cues_text() + "\nAgainst AWS (--target aws), Claude answers anything.")


@cli.command(epilog=INVOKE_EPILOG)
@target_options
@click.argument("prompt", required=False)
@click.option("--actor", default=DEFAULT_ACTOR, show_default=True, help="who is asking")
@click.option("--session", help="conversation to continue (default: a new one named by the time)")
@click.option("--interactive", "-i", is_flag=True, help="keep asking until you type /quit")
def invoke(target, region, prompt, actor, session, interactive) -> int:
    """Invoke the agent as an actor in a session; without PROMPT, or with --interactive, ask until /quit."""
    return run_invoke(_settings(target, region), prompt, actor, session, interactive)


def run_invoke(settings: Settings, prompt: str | None, actor: str, session: str | None, interactive: bool,
               read: Callable[[str], str] = input) -> int:
    from . import invoke as invoking

    session = session or dt.datetime.now(dt.timezone.utc).strftime("session-%Y%m%d-%H%M%S")
    print(f"actor {actor}, session {session} (continue it with --session {session})")
    prompts = [prompt] if prompt else []
    interactive = interactive or not prompts
    if interactive and settings.model_id == "local-stand-in":
        print("local-stand-in is a test double, not a language model; it acts on these cues:\n"
              + chat.stand_in_cues_text())
    while True:
        if not prompts:
            if not interactive:
                return 0
            try:
                line = read("you> ").strip()
            except EOFError:
                return 0
            if line.lower() == "/quit":
                return 0
            if not line:
                continue
            prompts.append(line)
        output = invoking.invoke(settings, prompts.pop(0), actor, session)
        meta = output.get("metadata") or {}
        print(f"\nagent> {terminal_text(output.result)}\n")
        print(f"  {'ok' if output.get('success') else 'FAILED'} in {output.seconds:.1f}s, "
              f"{meta.get('num_turns')} turns, memory {'on' if meta.get('memory_enabled') else 'off'}")
        for f in meta.get("uploaded_files") or []:
            print(f"  file {f.get('file_name')}: {f.get('s3_url')}")
        if not interactive:
            return 0 if output.get("success") else 1


@cli.command()
@target_options
@click.argument("actor")
@click.argument("session")
def history(target, region, actor, session) -> int:
    """Show a session's short-term turns (AgentCore Memory events)."""
    from . import memory

    turns = memory.events_df(_settings(target, region), actor, session)
    turns["text"] = turns["text"].map(terminal_text)
    _print_table(f"Turns of {actor} in {session} (oldest first)", turns)
    return 0


@cli.command()
@target_options
@click.argument("actor")
@click.option("--session", help="show this session's summary (default: every session's)")
@click.option("--query", help="rank records by similarity to this text")
def memories(target, region, actor, session, query) -> int:
    """Show an actor's long-term records: facts, preferences, session summaries."""
    from . import memory

    settings = _settings(target, region)
    for kind in ("facts", "preferences", "summaries"):
        _print_table(f"{kind} of {actor}", memory.records_df(settings, actor, kind, session_id=session, query=query))
    return 0


@cli.command()
@target_options
def info(target, region) -> int:
    """Show the deployment: runtime, image, memory and strategies, bucket, region."""
    from . import outputs

    _print_table("Deployment", outputs.deployment_df(_settings(target, region)))
    return 0


@cli.command()
@target_options
@click.argument("actor")
@click.argument("session")
def download(target, region, actor, session) -> int:
    """Download a session's files into .workshop/downloads/."""
    from . import outputs

    df = outputs.download_session(_settings(target, region), actor, session)
    _print_table(f"Files of {actor}/{session}", df[["kind", "file", "size", "local_path"]])
    return 0


@cli.command()
@target_options
@click.option("--keep-stack", is_flag=True, help="leave the CloudFormation stack in place")
def cleanup(target, region, keep_stack) -> int:
    """Delete the runtime, memory, SSM parameter, bucket contents, images and stack; safe to repeat."""
    from . import cleanup as cleaning

    settings = _settings(target, region)
    report = cleaning.cleanup_df(settings, delete_stack=not keep_stack)
    _print_table("Clean-up", report)
    _print_table("What remains", cleaning.remaining_df(settings))
    return 1 if (report["status"] == cleaning.ERROR).any() else 0


@cli.group("emulator")
def emulator_group() -> None:
    """The local emulator (target local): the notebooks and commands start it when they need it."""


@emulator_group.command("stop")
def emulator_stop() -> int:
    """Stop the emulator this checkout started; its state stays (`make clean-state` removes both)."""
    settings = config.load(target="local")
    if aws.stop_emulator(settings):
        print(f"stopped the emulator at {settings.endpoint_url} (state kept in {settings.state_dir / 'emulator'})")
    elif aws.emulator_health(settings.endpoint_url):
        print(f"the emulator at {settings.endpoint_url} was not started from this checkout "
              f"(no pid file in {settings.state_dir / 'emulator'}): stop it where it was started")
        return 1
    else:
        print(f"no emulator is running at {settings.endpoint_url}")
    return 0


@emulator_group.command("status")
def emulator_status() -> int:
    """Say whether the emulator answers at the local endpoint."""
    settings = config.load(target="local")
    health = aws.emulator_health(settings.endpoint_url)
    print(f"the emulator {'answers' if health else 'is not running'} at {settings.endpoint_url}")
    return 0 if health else 1


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (tests and `python -m helpers` both call this)."""
    try:
        code = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `python -m helpers` alone: the commands, as help
        print(exc.format_message())
        return 2
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else PROG
        print(f"error: {exc.format_message()} (see `{command} --help`)", file=sys.stderr)
        return 2
    except click.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    except WorkshopError as exc:
        # A WorkshopError is meant for a person: one line, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"error: {explain_aws_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0
