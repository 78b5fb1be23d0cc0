"""`python -m obsflow.cli`: the same as the `obsflow` command."""

from obsflow.cli import main

main()
