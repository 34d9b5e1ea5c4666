"""Imported first by every workflow script: puts this checkout's ``src/`` ahead of any installed modgap.

Snakemake appends the script folder to ``sys.path`` (after site-packages) and, in conda environments,
drops PYTHONPATH; without this, a job could import the package of another checkout or of an editable
install elsewhere while Snakemake tracks this checkout's files.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
