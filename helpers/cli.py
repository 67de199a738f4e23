"""The command-line counterparts of the notebooks: deploy, invoke, history, memories, info, download, cleanup.

Each command calls the same helpers the notebooks call, so the two never drift apart.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Callable

from . import config
from .config import Settings

DEFAULT_ACTOR = "default_user"


def _settings(args: argparse.Namespace) -> Settings:
    return config.load(target=args.target, region=args.region)


def _print_table(title: str, df) -> None:
    import pandas as pd

    print(f"\n{title}")
    if df is None or len(df) == 0:
        print("  (none)")
        return
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        print(df.to_string(index=False))


# -- deploy -------------------------------------------------------------------------------------
def _add_deploy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--build-method", default="auto", choices=["auto", "local", "docker", "codebuild"],
                   help="how to build the agent image (default: auto, which says why it chose)")


def _run_deploy(args) -> int:
    from . import image, memory, runtime, stack

    settings = _settings(args)
    deployed = stack.deploy_stack(settings)
    print(f"stack: {deployed}")
    created = memory.get_or_create_memory(settings)
    print(f"memory: {created['id']} ({created['status']})")
    build = image.build_and_push(settings, method=args.build_method)
    print(f"image: {build.image_uri} ({build.method}: {build.reason})")
    result = runtime.get_or_create_runtime(settings, image.latest_image_uri(settings))
    print(f"runtime: {result.agent_runtime_arn} {result.action}, {result.status}")
    print('\nNext: python -m helpers invoke "Create a simple hello world app"')
    return 0


# -- invoke -------------------------------------------------------------------------------------
def _add_invoke(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", help="the task; without it (or with --interactive) you are asked for one")
    p.add_argument("--actor", default=DEFAULT_ACTOR, help=f"who is asking (default {DEFAULT_ACTOR})")
    p.add_argument("--session", help="conversation to continue (default: a new one named by the time)")
    p.add_argument("--interactive", "-i", action="store_true", help="keep asking until you type /quit")


def _run_invoke(args, read: Callable[[str], str] = input) -> int:
    from . import invoke

    settings = _settings(args)
    session = args.session or dt.datetime.now(dt.timezone.utc).strftime("session-%Y%m%d-%H%M%S")
    print(f"actor {args.actor}, session {session} (continue it with --session {session})")
    prompts = [args.prompt] if args.prompt else []
    interactive = args.interactive or not prompts
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
        output = invoke.invoke(settings, prompts.pop(0), args.actor, session)
        meta = output.get("metadata") or {}
        print(f"\nagent> {output.result}\n")
        print(f"  {'ok' if output.get('success') else 'FAILED'} in {output.seconds:.1f}s, "
              f"{meta.get('num_turns')} turns, memory {'on' if meta.get('memory_enabled') else 'off'}")
        for f in meta.get("uploaded_files") or []:
            print(f"  file {f.get('file_name')}: {f.get('s3_url')}")
        if not interactive:
            return 0 if output.get("success") else 1


# -- history / memories ---------------------------------------------------------------------------
def _add_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("actor", help="actor id")
    p.add_argument("session", help="session id")


def _run_history(args) -> int:
    from . import memory

    _print_table(f"Turns of {args.actor} in {args.session} (oldest first)",
                 memory.events_df(_settings(args), args.actor, args.session))
    return 0


def _add_memories(p: argparse.ArgumentParser) -> None:
    p.add_argument("actor", help="actor id")
    p.add_argument("--session", help="show this session's summary (default: every session's)")
    p.add_argument("--query", help="rank records by similarity to this text")


def _run_memories(args) -> int:
    from . import memory

    settings = _settings(args)
    for kind in ("facts", "preferences", "summaries"):
        _print_table(f"{kind} of {args.actor}",
                     memory.records_df(settings, args.actor, kind, session_id=args.session, query=args.query))
    return 0


# -- info / download / cleanup --------------------------------------------------------------------
def _run_info(args) -> int:
    from . import outputs

    _print_table("Deployment", outputs.deployment_df(_settings(args)))
    return 0


def _add_download(p: argparse.ArgumentParser) -> None:
    p.add_argument("actor", help="actor id")
    p.add_argument("session", help="session id")


def _run_download(args) -> int:
    from . import outputs

    df = outputs.download_session(_settings(args), args.actor, args.session)
    _print_table(f"Files of {args.actor}/{args.session}", df[["kind", "file", "size", "local_path"]])
    return 0


def _add_cleanup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-stack", action="store_true", help="leave the CloudFormation stack in place")


def _run_cleanup(args) -> int:
    from . import cleanup

    settings = _settings(args)
    report = cleanup.cleanup_df(settings, delete_stack=not args.keep_stack)
    _print_table("Clean-up", report)
    left = cleanup.remaining_df(settings)
    _print_table("What remains", left)
    return 1 if (report["status"] == cleanup.ERROR).any() else 0


def _no_arguments(p: argparse.ArgumentParser) -> None:
    pass


# name -> (help, add_arguments, run)
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "deploy": ("deploy the stack, create the memory once, build and push the image, create the runtime",
               _add_deploy, _run_deploy),
    "invoke": ("invoke the agent as an actor in a session; --interactive keeps going until /quit",
               _add_invoke, _run_invoke),
    "history": ("show a session's short-term turns (AgentCore Memory events)", _add_history, _run_history),
    "memories": ("show an actor's long-term records: facts, preferences, session summaries",
                 _add_memories, _run_memories),
    "info": ("show the deployment: runtime, image, memory and strategies, bucket, region",
             _no_arguments, _run_info),
    "download": ("download a session's files into .workshop/downloads/", _add_download, _run_download),
    "cleanup": ("delete the runtime, memory, SSM parameter, bucket contents, images and stack; safe to repeat",
                _add_cleanup, _run_cleanup),
}


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=["local", "aws"], help="where to run (default: WORKSHOP_TARGET or local)")
    p.add_argument("--region", help="AWS region (required with --target aws unless AWS_REGION is set)")


if __name__ == "__main__":  # pragma: no cover - use `python -m helpers`
    sys.exit("use: python -m helpers --help")
