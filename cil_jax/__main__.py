"""`python -m cil_jax <command>`: the `cil-jax` command where its console script is not installed."""
import sys

from cil_jax.tools import cli

sys.exit(cli.main(prog='python -m cil_jax'))
