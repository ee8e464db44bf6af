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


INTERRUPTED = "interrupted; rerun the same command to continue"


def main() -> None:
    """Console entry point: run the app, turning SynthscaleError into one line and exit code 2.

    Any other exception (a full disk, a permission denied, a bug) is one line too, with exit
    code 1; `synthscale --debug ...` shows the traceback instead. Ctrl-C exits with code 130
    and says to rerun the same command (every long command resumes).
    """
    try:
        app()
    except SynthscaleError as e:
        if _state["debug"]:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        sys.exit(130)
    except SystemExit as e:  # typer turns Ctrl-C into a silent exit 130 (typer.Exit raised from the interrupt)
        if e.code == 130 and isinstance(getattr(e.__context__, "__cause__", None), KeyboardInterrupt):
            typer.echo(INTERRUPTED, err=True)
        raise
    except Exception as e:  # noqa: BLE001 (the last line of defence: no traceback without --debug)
        if _state["debug"]:
            raise
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        typer.echo(f"error: {type(e).__name__}{': ' + text if text else ''} "
                   "(unexpected; rerun with `synthscale --debug ...` for the traceback)", err=True)
        sys.exit(1)
