"""``python -m unetzoo``: the same command line as ``unetzoo``."""

from .cli import app

app()
