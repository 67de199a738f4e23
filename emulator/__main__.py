"""Command line: `python -m emulator serve --port 4566 --state-dir .workshop/emulator`."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve every emulated AWS service on one local endpoint")
    serve.add_argument("--port", type=int, default=4566, help="TCP port on 127.0.0.1 (default 4566)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--state-dir", type=Path, default=Path(".workshop/emulator"),
                       help="where state that survives a restart is kept (default .workshop/emulator)")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from .server import serve as run

    settings = Settings(state_dir=args.state_dir.resolve(), host=args.host, port=args.port)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
