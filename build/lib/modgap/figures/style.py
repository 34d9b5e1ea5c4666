"""Shared look of the figures: seaborn styling sized for a paper column, atomic PDF + PNG output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from modgap.io import atomic_path  # noqa: E402
from modgap.study.display import display_order  # noqa: E402

COLUMN_WIDTH = 3.4  # inches, one column of a two-column paper
PAGE_WIDTH = 7.0
MODALITY_MARKERS = {"image": "o", "audio": "^", "text": "s"}


def apply_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
    plt.rcParams.update({"figure.dpi": 150, "savefig.bbox": "tight", "legend.frameon": False, "pdf.fonttype": 42})


def method_colors(methods, labels=None) -> dict[str, tuple]:
    """A colour per method, by its place in the study's display order (``labels``: modgap.study.display), so a
    method keeps its colour in every figure of a study."""
    tab20 = sns.color_palette("tab20", 20)
    palette = tab20[0::2] + tab20[1::2]  # the ten strong hues first, then their light partners
    order = display_order([*(labels or {}), *methods])
    return {m: palette[order.index(m) % len(palette)] for m in methods}


# No creation date in PDFs: the same figure gives the same bytes in every run.
_PDF_METADATA = {"CreationDate": None}


def save(figure, pdf_path: str | Path, png_path: str | Path) -> None:
    for path, kwargs in ((pdf_path, {"metadata": _PDF_METADATA}), (png_path, {"dpi": 200})):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=Path(path).suffix[1:], **kwargs)
    plt.close(figure)


__all__ = ["COLUMN_WIDTH", "PAGE_WIDTH", "MODALITY_MARKERS", "apply_style", "method_colors", "save", "plt"]
