"""Synthetic skin photographs with per-sign severity masks, written in the SPEC dataset layout."""

from model.synth.generator import generate, render_gallery

__all__ = ["generate", "render_gallery"]
