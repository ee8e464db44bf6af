"""`python -m synthscale.cli`: the same as the `synthscale` command."""

from . import main

main()
