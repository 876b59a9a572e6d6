"""``python -m magicmask``: the command line."""

from magicmask.cli import main

main()
