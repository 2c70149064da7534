"""`dermsev`: synth, train, evaluate, predict, explain, export, bench, users.

Bad input ends with exit status 2 and one line on stderr, never a traceback
(set DERMSEV_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


COMMANDS = ("synth", "train", "evaluate", "predict", "explain", "export", "bench", "users")


def _command(name: str):
    return importlib.import_module(f"model.cli.{name}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dermsev", description="Score skin disease severity from photographs, sign by sign.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        _command(name).add_parser(sub)
    return p


def run(args: argparse.Namespace) -> int:
    _command(args.command).run(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from model.errors import DermsevError

    try:
        return run(args)
    except DermsevError as exc:
        print(f"dermsev {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dermsev {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as exc:
        if os.environ.get("DERMSEV_DEBUG"):
            raise
        print(f"dermsev {args.command}: error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
