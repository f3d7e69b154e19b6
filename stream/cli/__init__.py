"""The ``engagement`` command: one module per command family; they parse and print, no logic."""

from stream.cli.main import main

__all__ = ["main"]
