"""The `synthscale` command line: parse, call a stage function, print.

Any SynthscaleError (bad input, bad spec) is printed as one line and exits with code 2;
`synthscale --debug ...` shows the traceback instead.

The commands live in cli/study.py, data.py, models.py and generate.py; cli/app.py holds the
app and the helpers they share.
"""

from __future__ import annotations

import sys

import typer

from ..errors import SynthscaleError
from . import data, generate, models, study  # noqa: F401, I001 (each registers its commands, in this order)
from .app import _state, app


def main() -> None:
    """Console entry point: run the app, turning SynthscaleError into one line and exit code 2.

    Any other exception (a full disk, a permission denied, a bug) is one line too, with exit
    code 1; `synthscale --debug ...` shows the traceback instead.
    """
    try:
        app()
    except SynthscaleError as e:
        if _state["debug"]:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun the same command to continue", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 (the last line of defence: no traceback without --debug)
        if _state["debug"]:
            raise
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        typer.echo(f"error: {type(e).__name__}{': ' + text if text else ''} "
                   "(unexpected; rerun with `synthscale --debug ...` for the traceback)", err=True)
        sys.exit(1)
