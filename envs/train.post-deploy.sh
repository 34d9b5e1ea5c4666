#!/usr/bin/env bash
# Install this checkout's package into the freshly created environment. Snakemake
# runs post-deploy scripts from its own process, which exports MODGAP_SOURCE
# (workflow/rules/common.smk); editable, so code changes need no new environment.
set -euo pipefail
pip install --no-deps --no-build-isolation -e "${MODGAP_SOURCE:?set by workflow/rules/common.smk}"
