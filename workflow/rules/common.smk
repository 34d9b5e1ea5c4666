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

from modgap.config import ConfigError, experiment_by_name, load_config, resolve_run, runs


try:
    study = load_config(config, workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as error:
    raise WorkflowError(str(error)) from None


wildcard_constraints:
    dataset="|".join(study["datasets"]),
    experiment="|".join(e["name"] for e in study["experiments"]),
    method="|".join(study["methods"]),
    seed=r"\d+",


def used_datasets():
    """Data sets referenced by at least one experiment (others are never prepared)."""
    return sorted({experiment["dataset"] for experiment in study["experiments"]})


def prepared(dataset):
    return f"results/data/{dataset}"


def experiment_dataset(experiment):
    return experiment_by_name(study, experiment)["dataset"]


def run_path(kind, filename):
    """results/<kind>/{experiment}/{method}/seed{seed}/<filename> (wildcards left in)."""
    return f"results/{kind}/{{experiment}}/{{method}}/seed{{seed}}/{filename}"


def wants_gpu(experiment):
    """GPUs a training or embedding job asks the scheduler for (0 when forced onto the CPU)."""
    device = experiment_by_name(study, experiment).get("train", {}).get("device", study["train"]["device"])
    return 0 if device == "cpu" else 1


def embeddings():
    return [f"results/embeddings/{e}/{m}/seed{s}.npz" for e, m, s in runs(study)]


def all_targets():
    return [prepared(dataset) for dataset in used_datasets()] + embeddings()
