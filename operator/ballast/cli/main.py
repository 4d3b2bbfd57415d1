"""Entry point of ``ballast`` and ``kubectl ballast``."""

from __future__ import annotations

import click

from ballast.cli.check import check
from ballast.cli.operator import operator_group
from ballast.cli.releases import abort, approve, promote
from ballast.cli.sre import describe, history, score, status
from ballast.cli.wait import wait


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ballast")
def cli() -> None:
    """Ballast: release guardrails for Kubernetes."""


cli.add_command(operator_group)
cli.add_command(check)
for command in (approve, abort, promote, status, history, describe, score, wait):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="ballast")


if __name__ == "__main__":
    main()
