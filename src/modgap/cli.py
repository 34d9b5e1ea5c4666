"""Command line: ``modgap claims`` prints whether the paper's claims hold on a finished study."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modgap.config import ConfigError, deep_merge, evaluated_runs, evaluations, experiment_by_name, ladders, load_config


def _load(configfiles: list[Path]) -> dict:
    """Like Snakemake: config.yaml of the repository first, then each --configfile merged over it."""
    import yaml

    merged: dict = {}
    for path in configfiles:
        with open(path) as handle:
            merged = deep_merge(merged, yaml.safe_load(handle) or {})
    return load_config(merged)


def claims(arguments: argparse.Namespace) -> int:
    import pandas as pd

    from modgap.claims import check_claims, format_verdicts, mismatch

    if not arguments.runs.is_file():
        print(f"{arguments.runs}: not found; run the study first (snakemake --cores all)", file=sys.stderr)
        return 2
    config = _load([arguments.default_config, *arguments.configfile])
    runs = pd.read_csv(arguments.runs)
    problems = mismatch(runs, evaluated_runs(config))
    if problems:
        given = " ".join(f"--configfile {p}" for p in arguments.configfile) or "config.yaml alone"
        print(
            f"warning: {arguments.runs} does not hold the study of {given}:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nrun snakemake with the same configuration first, or pass the --configfile it was run with",
            file=sys.stderr,
        )
        return 1
    counts = {e["name"]: len(experiment_by_name(config, e["name"])["modalities"]) for e in evaluations(config)}
    verdicts, ladder_results = check_claims(runs, config["claims"], counts, ladders(config))
    print(format_verdicts(verdicts, config["claims"], ladder_results), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modgap", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("claims", help="check the paper's three claims on results/tables/runs.csv")
    check.add_argument("--runs", type=Path, default=Path("results/tables/runs.csv"), help="per-seed results")
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
