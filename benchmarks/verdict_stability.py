"""Does the verdict survive a fresh seed set? The default study with its own seeds and with a disjoint set of
the same size, each check's Holm state side by side.

    python benchmarks/verdict_stability.py [--configfile F ...] [--offset 100] [--cores all]

Runs ``snakemake`` twice in this checkout (the second with ``--config seeds=[...]``, the seeds shifted by
``--offset``), keeps each study's runs table under ``results/stability/``, and prints both studies' states
with the count of checks that differ; exit status 1 when any does. Training is cached per seed, so a finished
default study trains only the second set. The last run leaves ``results/`` holding the second seed set's
tables and claims: run ``snakemake --cores all`` again to restore the default's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from modgap.io import write_text
from modgap.study.config import DEFAULT_CONFIG, load_config_files
from modgap.study.plan import ladders, paper_references
from modgap.verdict.stability import holm_states, side_by_side

REPO = Path(__file__).resolve().parents[1]


def run_study(configfiles: list[str], seeds: list[int] | None, cores: str, keep: Path) -> float:
    """One snakemake run of the study (with ``seeds`` instead of the configuration's); its runs table is kept."""
    command = ["snakemake", "--cores", cores]
    if seeds is not None:
        command += ["--config", f"seeds=[{','.join(map(str, seeds))}]"]
    if configfiles:
        command += ["--configfile", *configfiles]
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "results" / "tables" / "runs.csv", keep)
    shutil.copyfile(REPO / "results" / "claims.txt", keep.with_suffix(".claims.txt"))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", nargs="*", default=[], help="as snakemake takes them, after config.yaml")
    parser.add_argument("--offset", type=int, default=100, help="the second seed set: the first shifted by this")
    parser.add_argument("--cores", default="all")
    arguments = parser.parse_args()
    config = load_config_files([DEFAULT_CONFIG, *arguments.configfile])
    first = list(config["seeds"])
    second = [seed + arguments.offset for seed in first]
    if set(first) & set(second):
        parser.error(f"--offset {arguments.offset} leaves the seed sets overlapping")
    folder = REPO / "results" / "stability"
    names = [f"seeds {first[0]}-{first[-1]}", f"seeds {second[0]}-{second[-1]}"]
    references = paper_references(config)
    states, times = [], []
    for seeds, name in zip((None, second), ("first", "second")):
        keep = folder / f"{name}_runs.csv"
        times.append(run_study(arguments.configfile, seeds, arguments.cores, keep))
        states.append(holm_states(pd.read_csv(keep), config["claims"], ladders(config), references))
    table, differ = side_by_side(*states, names)
    summary = (f"{len(states[0])} checks; {differ} differ. Wall times: {times[0]:.0f} s ({names[0]}), "
               f"{times[1]:.0f} s ({names[1]}).")  # fmt: skip
    write_text(folder / "stability.md", table + "\n" + summary + "\n")
    print(table + "\n" + summary)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
