"""Shared look of the figures: seaborn styling sized for a paper column, atomic PDF + PNG output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from modgap.io import atomic_path  # noqa: E402
from modgap.tables import method_label  # noqa: E402

COLUMN_WIDTH = 3.4  # inches, one column of a two-column paper
PAGE_WIDTH = 7.0
MODALITY_MARKERS = {"image": "o", "audio": "^", "text": "s"}
METHOD_ORDER = ("clip_lt", "clip_ft", "ours", "ours_released", "ours_schedule", "ours_atp", "ours_cu", "sharedclip",
                "alignclip", "alignclip_label", "posthoc")  # fmt: skip


def apply_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
    plt.rcParams.update({"figure.dpi": 150, "savefig.bbox": "tight", "legend.frameon": False, "pdf.fonttype": 42})


def method_colors(methods) -> dict[str, tuple]:
    tab20 = sns.color_palette("tab20", 20)  # the ten strong hues first, then their light partners
    palette = (tab20[0::2] + tab20[1::2])[: len(METHOD_ORDER)]  # a hue of its own for every named method
    return {m: palette[METHOD_ORDER.index(m) % len(palette)] if m in METHOD_ORDER else "gray" for m in methods}


def ordered(methods) -> list[str]:
    known = [m for m in METHOD_ORDER if m in methods]
    return known + sorted(m for m in methods if m not in METHOD_ORDER)


# No creation date in PDFs: the same figure gives the same bytes in every run.
_PDF_METADATA = {"CreationDate": None}


def save(figure, pdf_path: str | Path, png_path: str | Path) -> None:
    for path, kwargs in ((pdf_path, {"metadata": _PDF_METADATA}), (png_path, {"dpi": 200})):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=Path(path).suffix[1:], **kwargs)
    plt.close(figure)


__all__ = ["COLUMN_WIDTH", "PAGE_WIDTH", "MODALITY_MARKERS", "apply_style", "method_colors", "method_label",
           "ordered", "save", "plt"]  # fmt: skip
