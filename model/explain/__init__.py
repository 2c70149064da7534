"""Why a score: per-channel saliency maps and channel importance (learned, ablation, gradient, probe)."""
