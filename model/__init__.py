"""dermsev: per-sign skin disease severity from photographs (EASI signs by default)."""

from __future__ import annotations

import os

# No network here and none wanted at run time: never let a library reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
