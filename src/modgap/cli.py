"""Command line.

``modgap claims``: whether the paper's claims hold on a finished study.
``modgap evaluate FILE...``: the gap and group-wise metrics of your own embeddings.
``modgap compare --baseline DIR --method DIR``: the claims check between two models' per-seed embeddings.
``modgap embed --model MODEL --data DIR --out DIR``: a prepared data set embedded by an open_clip or Hugging Face model.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from modgap import your_embeddings
from modgap.embeddings import external_files
from modgap.errors import CorruptIntermediateError, ExplainedError, corrupt
from modgap.io import OutputFolderError, check_output_folder, write_json, write_text
from modgap.study.config import DEFAULT_CONFIG, ConfigError, load_config_files
from modgap.study.model_specs import DEFAULT_PROMPT
from modgap.study.paths import RUNS_TABLE
from modgap.study.plan import (
    decided_comparisons,
    definition_digests,
    evaluated_runs,
    evaluations,
    ladders,
    method_labels,
    paper_references,
)
from modgap.study.schema import bound_problems, section_defaults


def claims_command(arguments: argparse.Namespace) -> int:
    if arguments.runs.is_dir():
        raise ExplainedError(f"{arguments.runs}: a folder, not a runs table (results/tables/runs.csv)")
    if not arguments.runs.is_file():
        print(
            f"modgap claims: {arguments.runs}: not found; run the study first (snakemake --cores all)", file=sys.stderr
        )
        return 2
    config = load_config_files([arguments.default_config, *arguments.configfile])
    # advice to rebuild a damaged table names the study's own command, and only for the study's own table
    given = [part for path in arguments.configfile for part in ("--configfile", str(path))]
    own_table = arguments.runs.resolve() == (Path.cwd() / RUNS_TABLE).resolve()
    try:
        return _claims(arguments, config)
    except CorruptIntermediateError as error:
        command = shlex.join(["snakemake", "--cores", "all", *given])
        raise corrupt(error.path, error.what, error.detail, rebuildable=own_table, command=command) from None


def _claims(arguments: argparse.Namespace, config: dict) -> int:
    # loaded here, not at import, as in modgap.your_embeddings.compare: `modgap evaluate` needs neither
    from modgap.verdict.evidence import definition_mismatch, mismatch, read_runs
    from modgap.verdict.report import claims_report
    from modgap.verdict.sequential import Design, first_round_text

    runs = read_runs(arguments.runs)
    problems = mismatch(runs, evaluated_runs(config)) + definition_mismatch(runs, definition_digests(config))
    if problems:
        given = " ".join(f"--configfile {p}" for p in arguments.configfile) or "config.yaml alone"
        print(
            f"warning: {arguments.runs} does not hold the study of {given}:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nrun snakemake with the same configuration first, or pass the --configfile it was run with",
            file=sys.stderr,
        )
        return 1
    references, labels = paper_references(config), method_labels(config)
    report = claims_report(
        arguments.runs, config["claims"], ladders=ladders(config), references=references, labels=labels, runs=runs
    )
    # the same round-1 account of the plan of seeds as results/claims.txt ends with
    finals = {e["experiment"]: e["name"] for e in evaluations(config) if e["final"]}
    design = Design.of(config["decide"])
    plan = first_round_text(runs, finals, decided_comparisons(config), design, config["claims"], references, labels)
    print(report + "\n" + plan if plan else report, end="")
    if "definition" not in runs:
        print(
            f"note: {arguments.runs} has no definition column (written by an older modgap): which configuration "
            "made its runs was not checked",
            file=sys.stderr,
        )
    return 0


def _progress(quiet: bool):
    """A stage printer for long inputs: one line per stage on stderr, with the time since the start."""
    started = time.perf_counter()

    def show(stage: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - started:6.1f} s] {stage}", file=sys.stderr, flush=True)

    return show


# The metric and claims options by the schema key each sets (workflow/schemas/config.schema.yaml).
METRIC_OPTIONS = {
    "k": "recall_at",
    "kmeans_k": "kmeans_k",
    "kmeans_starts": "kmeans_n_init",
    "kmeans_states": "kmeans_states",
    "knn_loo_queries": "knn_loo_queries",
    "knn_k": "knn_k",
    "knn_split": "knn_split",
    "knn_test_fraction": "knn_test_fraction",
    "split_seed": "knn_seed",
}
CLAIMS_OPTIONS = {name: name for name in ("confidence", "min_seeds", "retrieval_tolerance", "margin_fraction")}
# Every option a schema bounds: (the schema's definition, its key, the config key as the workflow names it).
BOUNDED_OPTIONS = {
    **{option: ("evaluate", key, f"evaluate.{key}") for option, key in METRIC_OPTIONS.items()},
    **{option: ("claims", key, f"claims.{key}") for option, key in CLAIMS_OPTIONS.items()},
    "budget": ("train", "budgets", "train.budgets"),  # one budget of a ladder
    "max_array_gib": ("dumps_dataset", "max_array_gib", "datasets.<name>.max_array_gib"),
}


def _chosen(arguments: argparse.Namespace, options: dict[str, str]) -> dict:
    """schema key -> value of the ``options`` (option -> key) given on the command line."""
    given = {option: getattr(arguments, option, None) for option in options}
    return {options[option]: value for option, value in given.items() if value is not None}


def _option_problem(arguments: argparse.Namespace) -> str | None:
    """The first option whose value breaks the bounds the workflow's schema sets for its key (None: none),
    checked before any work."""
    for option, (definition, key, config_key) in BOUNDED_OPTIONS.items():
        value = getattr(arguments, option, None)
        if value is None:
            continue
        problems = bound_problems(definition, {key: [value] if key == "budgets" else value})
        if problems:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            return f"--{option.replace('_', '-')} {shown}: {problems[key]} (the bound of {config_key})"
    return None


def _options(arguments: argparse.Namespace) -> dict:
    """The metric options: the study's defaults (workflow/schemas/config.schema.yaml), as overridden."""
    return {**section_defaults("evaluate"), **_chosen(arguments, METRIC_OPTIONS)}


def _modalities(arguments: argparse.Namespace) -> list[str] | None:
    if arguments.modalities is None:
        return None
    names = [m for m in arguments.modalities.split(",") if m]
    if not names:
        raise ExplainedError(f"--modalities {arguments.modalities!r} names no modality (a,b: comma-separated)")
    twice = sorted({m for m in names if names.count(m) > 1})
    if twice:
        raise ExplainedError(f"--modalities {arguments.modalities!r} names {', '.join(twice)} twice")
    return names


def evaluate_command(arguments: argparse.Namespace) -> int:
    paths = arguments.files
    sets = [paths] if all(p.suffix.lower() == ".npy" for p in paths) else [[p] for p in paths]
    for path in [*paths, *([arguments.labels] if arguments.labels else [])]:
        external_files.check_file(path)
    named = [("+".join(p.stem for p in files), files) for files in sets]
    if arguments.out is not None:
        first: dict[str, list[Path]] = {}
        for name, files in named:
            if name in first:
                raise OutputFolderError(
                    f"{arguments.out}: {first[name][0]} and {files[0]} would both write {name}.json "
                    "there; evaluate them into two folders"
                )
            first[name] = files
        check_output_folder(arguments.out, [f"{name}.{suffix}" for name, _ in named for suffix in ("json", "md")])
    options = _options(arguments)
    for name, files in named:
        progress = _progress(arguments.quiet)
        progress(f"reading {' + '.join(map(str, files))}")
        embeddings = external_files.load(
            files,
            modalities=_modalities(arguments),
            labels=arguments.labels,
            budget=arguments.budget,
            max_array_bytes=external_files.array_limit(arguments.max_array_gib),
        )
        results = your_embeddings.evaluate(
            embeddings, options, level=arguments.level, anchor=arguments.anchor, progress=progress
        )
        progress("done")
        report = your_embeddings.markdown(results)
        print(report)
        if arguments.out is not None:
            write_json(arguments.out / f"{name}.json", results)
            write_text(arguments.out / f"{name}.md", report)
            progress(f"wrote {arguments.out / name}.json and .md")
    return 0


def compare_command(arguments: argparse.Namespace) -> int:
    names = (
        arguments.baseline_name or arguments.baseline.resolve().name,
        arguments.method_name or arguments.method.resolve().name,
    )
    if names[0] == names[1]:
        raise ExplainedError(
            f"both folders are called '{names[0]}'; tell them apart with --baseline-name/--method-name"
        )
    if arguments.out is not None:
        check_output_folder(arguments.out, ["claims.txt", "runs.csv"])
    claims = {**section_defaults("claims"), "baseline": names[0], "methods": [names[1]]}
    claims |= _chosen(arguments, CLAIMS_OPTIONS)
    report, runs = your_embeddings.compare(
        arguments.baseline,
        arguments.method,
        _options(arguments),
        claims,
        level=arguments.level,
        anchor=arguments.anchor,
        modalities=_modalities(arguments),
        budget=arguments.budget,
        paper_reference=arguments.paper_reference,
        max_array_bytes=external_files.array_limit(arguments.max_array_gib),
        progress=_progress(arguments.quiet),
    )
    print(report, end="")
    if arguments.out is not None:
        write_text(arguments.out / "claims.txt", report)
        write_text(arguments.out / "runs.csv", runs.to_csv(index=False))
    return 0


def _metric_options(command: argparse.ArgumentParser) -> None:
    """Options shared by evaluate and compare; unset ones take the study's defaults."""
    command.add_argument(
        "--level",
        choices=("instance", "class"),
        default="instance",
        help="retrieval level: a query's own partner (instance) or any item of its class (class, needs labels)",
    )
    command.add_argument("--k", type=int, nargs="+", metavar="K", help="the k of R@k (default 1 5 10)")
    command.add_argument(
        "--anchor", help="the modality retrieval runs from and to (default: text if present, else the first)"
    )
    command.add_argument("--modalities", help="comma-separated arrays to measure (default: every non-reserved array)")
    command.add_argument(
        "--budget", type=int, help="from a dump of this project's budget ladder: the embeddings of that epoch"
    )
    command.add_argument("--kmeans-k", type=int, help="KMeans clusters (default: the number of classes)")
    command.add_argument(
        "--kmeans-starts",
        type=int,
        help="k-means++ starts per clustering, the best inertia kept (default 1, as released)",
    )
    command.add_argument(
        "--kmeans-states", type=int, help="KMeans random states the low-variance scores average (default 20)"
    )
    command.add_argument("--knn-k", type=int, help="neighbours of the kNN vote (default 5)")
    command.add_argument(
        "--knn-loo-queries",
        type=int,
        help="leave-one-out kNN queries at most this many points, a seeded sample above (default 10000)",
    )
    command.add_argument(
        "--knn-split",
        choices=("point", "item"),
        help="kNN test split: stacked points as the released code (point, default) or whole items (item)",
    )
    command.add_argument("--knn-test-fraction", type=float, help="kNN test part (default 0.2)")
    command.add_argument("--split-seed", type=int, help="seed of the kNN split (default 0)")
    command.add_argument(
        "--max-array-gib",
        type=float,
        help="largest array a file may declare, uncompressed, checked before reading (default 1)",
    )
    command.add_argument("--out", type=Path, help="also write the results into this folder")
    command.add_argument("--quiet", action="store_true", help="no progress lines")


EMBED_EXAMPLES = """models (MODEL):
  open_clip:<architecture>/<pretrained tag>   e.g. open_clip:ViT-B-32/laion2b_s34b_b79k
  open_clip:<folder>                          a local folder with open_clip_config.json and weights
  hf:<hub id or folder>                       e.g. hf:openai/clip-vit-base-patch32 (image + text),
                                              hf:laion/clap-htsat-unfused (audio + text)

examples:
  modgap embed --model open_clip:ViT-B-32/laion2b_s34b_b79k --data results/data/cifar10 --out dumps/
  modgap embed --model hf:openai/clip-vit-base-patch32 --data results/data/cifar10 --out dumps/
  modgap evaluate dumps/*.npz --level class

Weights come from the hubs into their caches (~/.cache/huggingface); offline, a model must be cached."""


def embed_command(arguments: argparse.Namespace) -> int:
    from modgap.study.model_specs import parse_model_spec

    specs = [parse_model_spec(text) for text in arguments.model]  # every spec checked before any model loads
    slugs = [spec.slug for spec in specs]
    twice = sorted({str(spec) for spec in specs if slugs.count(spec.slug) > 1})
    if twice:
        raise ExplainedError(
            f"{' and '.join(twice)} would be written to one file ({specs[0].slug}...): name each model once"
        )
    try:
        check_output_folder(arguments.out, [f"{spec.slug}.npz" for spec in specs])
    except OutputFolderError as error:
        raise ExplainedError(str(error)) from None
    from modgap.embeddings.from_models import write_model_dump  # torch: imported once the arguments hold

    for spec in specs:
        started = time.perf_counter()
        output = arguments.out / f"{spec.slug}.npz"
        if not arguments.quiet:
            print(f"embedding {arguments.data} ({arguments.split}) with {spec}", file=sys.stderr, flush=True)
        _, done = write_model_dump(
            spec,
            arguments.data,
            output,
            arguments.device,
            split=arguments.split,
            text=arguments.text,
            prompt=arguments.prompt,
            batch_size=arguments.batch_size,
            progress=not arguments.quiet,
        )
        text = {"captions": "first caption of each item", "prompts": f"class prompts {arguments.prompt!r}"}
        what = f"; text: {text[done['text']]}" if "text" in done else ""
        print(
            f"wrote {output}: {done['items']} items x {done['embed_dim']}-d, {' + '.join(done['modalities'])}{what} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    print(f"measure them with: modgap evaluate {' '.join(str(arguments.out / f'{s.slug}.npz') for s in specs)}")
    return 0


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modgap", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    measure = commands.add_parser(
        "evaluate",
        help="the gap and group-wise metrics of your own embeddings",
        description="Every metric of embeddings made elsewhere: one .npz, .safetensors or .pt file per set "
        "(one array per modality, optional 'labels'), or one .npy file per modality of one set.",
    )
    measure.add_argument("files", type=Path, nargs="+", metavar="FILE")
    measure.add_argument("--labels", type=Path, help="a .npy file of labels (one per row), for .npy sets")
    _metric_options(measure)
    measure.set_defaults(handler=evaluate_command)
    pair = commands.add_parser(
        "compare",
        help="the claims check between two models' per-seed embeddings",
        description="The claims check (docs/verdict.md) of one model against a baseline: one embedding file "
        "per seed in each folder, paired by file name, evaluated on one test set.",
    )
    pair.add_argument("--baseline", type=Path, required=True, help="folder of the baseline's files, one per seed")
    pair.add_argument("--method", type=Path, required=True, help="folder of the compared model's files, same names")
    pair.add_argument("--baseline-name", help="its name in the verdicts (default: the folder's name)")
    pair.add_argument("--method-name", help="its name in the verdicts (default: the folder's name)")
    pair.add_argument("--confidence", type=float, help="1 - the family-wise error rate (default 0.95)")
    pair.add_argument("--min-seeds", type=int, help="fewest paired seeds that may decide a check (default 3)")
    pair.add_argument(
        "--retrieval-tolerance", type=float, help="claim 1: largest R@1 change that counts as barely changed (points)"
    )
    pair.add_argument(
        "--margin-fraction",
        type=float,
        help="claims 2 and 3 fail when this fraction of the paper's effect is ruled out (default 0.5)",
    )
    pair.add_argument(
        "--paper-reference",
        choices=["cifar10", "mscoco", "avmnist"],
        help="the paper's data set whose effects set the margins (default: the median over the three)",
    )
    _metric_options(pair)
    pair.set_defaults(handler=compare_command)
    embed = commands.add_parser(
        "embed",
        help="embed a prepared data set with an open_clip or Hugging Face model",
        description="A prepared data set (results/data/<name>) embedded by pretrained models, one dump per model "
        "(<out>/<model>.npz: every modality the model and the data set share, labels, ids, class names), for "
        "modgap evaluate, modgap compare and the workflow (docs/your_embeddings.md).",
        epilog=EMBED_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_argument("--model", action="append", required=True, metavar="MODEL", help="a model (repeatable)")
    embed.add_argument("--data", type=Path, required=True, help="a prepared data set folder")
    embed.add_argument("--out", type=Path, required=True, help="folder of the dumps")
    embed.add_argument("--split", default="test", choices=["train", "val", "test"], help="(default test)")
    embed.add_argument(
        "--text",
        default="auto",
        choices=["auto", "captions", "prompts"],
        help="each item's first caption, or its class prompt (auto: prompts where captions are only class names)",
    )
    embed.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"class prompt template (default {DEFAULT_PROMPT!r})")
    embed.add_argument("--batch-size", type=_positive, default=256, help="items per forward pass (default 256)")
    embed.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="(default: CUDA if present)")
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    embed.set_defaults(handler=embed_command)
    check = commands.add_parser("claims", help="check the paper's three claims on results/tables/runs.csv")
    check.add_argument("--runs", type=Path, default=Path("results/tables/runs.csv"), help="per-seed results")
    check.add_argument("--configfile", type=Path, action="append", default=[], help="as given to snakemake")
    check.add_argument("--default-config", type=Path, default=DEFAULT_CONFIG, help=argparse.SUPPRESS)
    check.set_defaults(handler=claims_command)
    arguments = parser.parse_args(argv)
    problem = _option_problem(arguments)
    if problem:
        print(f"modgap {arguments.command}: {problem}", file=sys.stderr)
        return 2
    try:
        return arguments.handler(arguments)
    except (ConfigError, ExplainedError) as error:
        print(f"modgap {arguments.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outputs are atomic: nothing half-written is left
        print(f"modgap {arguments.command}: interrupted; nothing half-written was left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
