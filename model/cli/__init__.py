"""`dermsev`: one module per command; `main` parses the command line."""

from model.cli.main import main

__all__ = ["main"]
