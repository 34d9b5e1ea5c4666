"""Figures of the study (docs/workflow.md), one module per figure so each can be rebuilt alone."""
