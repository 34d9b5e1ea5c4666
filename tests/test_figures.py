"""The figures name methods as the configuration does (methods.<name>.label), else by their keys, and show them
in the configuration's order."""

import numpy as np
import pandas as pd

from modgap.figures import cosine, curves, latent
from modgap.figures.style import plt
from modgap.verdict.decision import check_claims
from modgap.verdict.regime import regime_markdown
from modgap.verdict.verdict_table import verdict_table

LABELS = {"clip_lt": "Baseline CLIP", "ours": "Ours, renamed"}  # display names, in display order


def unit_rows(rng, n=40, d=8):
    z = rng.normal(size=(n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def dumps():
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 4
    return [
        (m, {"image": unit_rows(rng), "text": unit_rows(rng), "labels": labels}) for m in ("clip_lt", "ours", "new")
    ]


def titles(figure) -> str:
    text = " ".join(axis.get_title(loc=loc) for axis in figure.axes for loc in ("left", "center"))
    plt.close(figure)
    return text


def test_latent_and_cosine_panels_carry_the_configured_names():
    for figure in (latent.plot(dumps(), ["a", "b", "c", "d"], labels=LABELS), cosine.plot(dumps(), labels=LABELS)):
        shown = titles(figure)
        assert "Ours, renamed" in shown and "Baseline CLIP" in shown
        assert "new" in shown  # a method without a label keeps its key
    assert "clip_lt" in titles(latent.plot(dumps(), ["a", "b", "c", "d"]))  # no configuration: the key


def test_training_curves_legend_uses_the_configured_names():
    logs = pd.DataFrame(
        [
            {"method": m, "epoch": e, "loss": 1.0, "temperature": 0.07, "val_gap": 0.5, "val_r1": 50.0}
            for m in ("clip_lt", "ours")
            for e in (1, 2)
        ]
    )
    for labels, expected in (
        (LABELS, ["Baseline CLIP", "Ours, renamed"]),
        ({"ours": "Ours", "clip_lt": "CLIP"}, ["Ours", "CLIP"]),
    ):
        figure = curves.plot(logs, labels=labels)
        legend = [text.get_text() for text in figure.legends[0].get_texts()]
        plt.close(figure)
        assert legend == expected  # in the order of the display names, not of the logs


def test_regime_table_names_the_baseline_and_methods_by_their_labels():
    row = {"experiment": "e", "knob": 7, "modalities": 2, "method": "ours", "budget": 10, "converged_since": None,
           "baseline_gap": 0.5, "method_gap": 0.1, "claim1": "holds", "claim2": "fails", "claim3": "holds"}  # fmt: skip
    for key in ("v_measure", "knn_acc", "tv_r1"):
        row |= {key: 1.0, f"{key}_low": 0.5, f"{key}_high": 1.5}
    header, _, line = regime_markdown(pd.DataFrame([row]), "patch", "clip_lt", LABELS).splitlines()
    assert "| Baseline CLIP gap |" in header and "| Ours, renamed |" in line


def test_budget_and_regime_figures_name_the_baseline_and_methods_by_their_labels():
    from modgap.figures import budget
    from modgap.figures.regime import plot as regime_plot

    rows = []
    for epochs in (10, 20):
        row = {"experiment": "e", "knob": 7, "modalities": 2, "method": "ours", "budget": epochs,
               "baseline_gap": 0.5, "method_gap": 0.1}  # fmt: skip
        for key in ("v_measure", "knn_acc", "tv_r1"):
            row |= {key: 1.0, f"{key}_low": 0.5, f"{key}_high": 1.5, f"{key}_margin": 0.5}
        rows.append(row)
    frame = pd.DataFrame(rows)
    figure = budget.plot(frame, "clip_lt", LABELS)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    plt.close(figure)
    assert legend == ["Baseline CLIP", "Ours, renamed"]
    figure = regime_plot(frame, "patch", "clip_lt", LABELS)
    shown = " ".join(axis.get_xlabel() for axis in figure.axes)
    assert "Baseline CLIP gap" in shown and "Ours, renamed vs Baseline CLIP" in titles(figure)


def test_a_method_keeps_its_colour_in_every_figure_of_a_study():
    from modgap.figures.style import method_colors

    names = {"clip_lt": "CLIP", "ours": "Ours", "other": "Other"}  # the study's display order
    assert method_colors(["ours"], names)["ours"] == method_colors(["clip_lt", "ours"], names)["ours"]
    assert method_colors(["other", "clip_lt"], names)["clip_lt"] == method_colors(["clip_lt"], names)["clip_lt"]
    assert len(set(method_colors(list(names), names).values())) == 3


def test_the_budget_figure_of_a_baseline_only_study_says_there_is_no_comparison(tmp_path):
    """A calibration-like study (claims.methods never trained): no regime rows, a figure that says so."""
    from modgap.figures import budget

    runs = pd.DataFrame([{"experiment": "e@10", "method": "clip_lt", "seed": s, "gap": 0.5, "tv_r1": 60.0,
                          "v_measure": 50.0, "knn_acc": 70.0, "collapsed": False} for s in range(3)])  # fmt: skip
    runs.to_csv(tmp_path / "runs.csv", index=False)
    claims = {"baseline": "clip_lt", "methods": ["ours"], "controls": [], "confidence": 0.95, "min_seeds": 3,
              "retrieval_tolerance": 5.0, "margin_fraction": 0.5}  # fmt: skip
    families = check_claims(pd.read_csv(tmp_path / "runs.csv"), claims, {"e": [(10, "e@10")]}, {})
    verdict_table(families, claims["confidence"]).to_csv(tmp_path / "verdict.csv", index=False)
    budget.make(tmp_path / "verdict.csv", "clip_lt", tmp_path / "b.pdf", tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 0
    figure = budget.plot(pd.DataFrame(), "clip_lt")
    assert "no comparison" in " ".join(t.get_text() for t in figure.axes[0].texts)
    plt.close(figure)
