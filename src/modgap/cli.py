"""Command line: ``modgap claims`` prints whether the paper's claims hold on a finished study."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modgap.config import ConfigError, deep_merge, load_config


def _load(configfiles: list[Path]) -> dict:
    """Like Snakemake: config.yaml of the repository first, then each --configfile merged over it."""
    import yaml

    merged: dict = {}
    for path in configfiles:
        with open(path) as handle:
            merged = deep_merge(merged, yaml.safe_load(handle) or {})
    return load_config(merged)


def claims(arguments: argparse.Namespace) -> int:
    from modgap.claims import claims_report

    if not arguments.table.is_file():
        print(f"{arguments.table}: not found; run the study first (snakemake --cores all)", file=sys.stderr)
        return 2
    config = _load([arguments.default_config, *arguments.configfile])
    counts = {e["name"]: len(e["modalities"]) for e in config["experiments"]}
    print(claims_report(arguments.table, config["claims"], counts), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modgap", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("claims", help="check the paper's three claims on results/tables/main.csv")
    check.add_argument("--table", type=Path, default=Path("results/tables/main.csv"))
    check.add_argument("--configfile", type=Path, action="append", default=[], help="as given to snakemake")
    check.add_argument("--default-config", type=Path, default=Path("config.yaml"), help=argparse.SUPPRESS)
    check.set_defaults(handler=claims)
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
