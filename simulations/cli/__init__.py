"""The `fedvault` command: the typer app (app.py) and the code behind its commands that
belongs to no other subpackage (preflight.py: config against data; node.py: `fedvault node`).

`python -m simulations.cli ...` runs it (__main__.py); the `fedvault` script is `main`.
"""

from simulations.cli.app import cli, main

__all__ = ["cli", "main"]
