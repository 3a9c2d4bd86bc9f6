"""``python -m rtctl``: the ``rtctl`` command."""

from rtctl.cli.main import main

main()
