# Configuration and path helpers shared by every stage.

import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Use this checkout's package even where only Snakemake is installed (e.g. with --use-conda).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
# Read by envs/*.post-deploy.sh to install the package into the conda environments.
os.environ.update(MODGAP_SOURCE=str(workflow.basedir))

TRAIN_ENV = "../../envs/train.yaml"
ANALYSIS_ENV = "../../envs/analysis.yaml"

from modgap.config import ConfigError, load_config


try:
    study = load_config(config, workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as error:
    raise WorkflowError(str(error)) from None


wildcard_constraints:
    dataset="|".join(study["datasets"]),


def used_datasets():
    """Data sets referenced by at least one experiment (others are never prepared)."""
    return sorted({experiment["dataset"] for experiment in study["experiments"]})


def prepared(dataset):
    return f"results/data/{dataset}"


def all_targets():
    return [prepared(dataset) for dataset in used_datasets()]
