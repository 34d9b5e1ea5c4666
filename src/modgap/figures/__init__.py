"""Figures of the study (SPEC section 6), one module per figure so each can be rebuilt alone."""
