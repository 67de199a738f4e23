"""Command line for the workshop: `python -m helpers <command> ...` (see `--help`)."""
from __future__ import annotations

import argparse
import importlib
import sys

from botocore.exceptions import BotoCoreError, ClientError

from .errors import WorkshopError, explain_aws_error

# Each command is a module of helpers with `add_arguments(parser)` and `run_cli(args) -> int`;
# its docstring's first line is the command's help. Add a command by adding its module here.
COMMANDS = {
    "workshop": "workshop",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"helpers.{module_name}")
        doc = (module.__doc__ or name).strip()
        command = sub.add_parser(name, help=doc.splitlines()[0], description=doc)
        module.add_arguments(command)
        command.set_defaults(run=module.run_cli)
    from . import cli

    for name, (help_text, add_arguments, run) in cli.COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        cli.add_common(command)
        command.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
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


if __name__ == "__main__":
    sys.exit(main())
