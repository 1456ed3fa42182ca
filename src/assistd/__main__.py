"""`python -m assistd` runs the CLI."""

from assistd.cli import app

app()
