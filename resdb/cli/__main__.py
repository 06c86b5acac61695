"""`python -m resdb.cli`: the same as the `resdb` command."""

from resdb.cli import main

main()
