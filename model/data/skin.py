"""Is this a close-up photo of skin? A skin mask from colour, and a close-up measure.

Two image statistics, both on the photo at the gate's working size (longest side 256 px):

- **skin colour** (`skin_mask`): a pixel is skin-coloured when its CIELAB hue angle, chroma
  and lightness lie in the box SKIN_HUE x SKIN_CHROMA x SKIN_LIGHTNESS: every skin tone
  (Fitzpatrick I-VI) is a red-to-yellow hue of moderate chroma, from melanin and haemoglobin
  absorbing light; shading changes lightness, not hue. The mask is then cleaned (a median
  filter for speckle) and its enclosed holes are filled, so that hairs, dark crusts, scales
  and grey-white lesions inside skin count as skin (an affected area is a fraction of skin).
- **close-up structure** (`structure`): the median contrast (CIELAB L*) between two blurred
  copies of the photo (Gaussian sigma 6 and 16 px at 256 px). A close-up of skin is a
  textured surface with little large-scale structure; photos of objects, animals, faces or
  scenes have outlines (eyes, rims, edges) at that scale everywhere.

Colour alone cannot tell skin from wood, sand or fur (a tabby cat is skin-coloured almost
everywhere); the close-up measure catches those. Limits (docs/gate.md): the box and the
structure threshold were measured on synthetic skin (the demo model's training data) and the
photos shipped with scikit-image; a wooden table or tan leather inside a skin photo counts as
skin; a close-up of fur, or a photo of skin taken from afar, may pass or fail wrongly.
"""

from __future__ import annotations

import cv2
import numpy as np

# The skin-colour box in CIELAB (hue angle in degrees from +a* towards +b*, chroma, L*).
# Measured: bench/bench_gate.py; docs/gate.md.
SKIN_HUE = (5.0, 85.0)
SKIN_CHROMA = (4.0, 55.0)
SKIN_LIGHTNESS = (3.0, 98.0)
# Below this 95th-percentile chroma a photo has no colour to judge (black and white).
GREY_CHROMA = 4.0


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 sRGB on 0..1 -> (h, w, 3) float32 CIELAB (L* 0..100, a*, b*)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def chroma_hue(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) chroma and hue angle (degrees, -180..180) of a CIELAB image."""
    a, b = lab[..., 1], lab[..., 2]
    return np.hypot(a, b), np.degrees(np.arctan2(b, a))


def skin_colour(lab: np.ndarray) -> np.ndarray:
    """(h, w) bool: pixels whose colour lies in the skin box, before any cleaning."""
    c, h = chroma_hue(lab)
    lum = lab[..., 0]
    return ((h >= SKIN_HUE[0]) & (h <= SKIN_HUE[1]) & (c >= SKIN_CHROMA[0]) & (c <= SKIN_CHROMA[1])
            & (lum >= SKIN_LIGHTNESS[0]) & (lum <= SKIN_LIGHTNESS[1]))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool with every region of False not touching the border set to True."""
    holes = (~mask).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=4)
    if n <= 1:
        return mask.copy()
    h, w = mask.shape
    x, y, bw, bh = (stats[:, i] for i in range(4))
    inner = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    inner[0] = False  # label 0 is the skin itself
    return mask | inner[labels]


def skin_mask(lab: np.ndarray) -> np.ndarray:
    """(h, w) bool skin mask of a CIELAB image: skin colour, despeckled, holes filled."""
    raw = skin_colour(lab).astype(np.uint8) * 255
    if min(raw.shape) >= 5:
        raw = cv2.medianBlur(raw, 5)
    return fill_holes(raw > 127)


def is_grey(lab: np.ndarray) -> bool:
    """True when the photo has (almost) no colour: a black-and-white photo or scan."""
    return float(np.percentile(chroma_hue(lab)[0], 95)) < GREY_CHROMA


def structure(lightness: np.ndarray, scale: float = 1.0) -> float:
    """Median |G6 - G16| of L* (h, w), the sigmas in px at 256 px (times `scale` for another
    size): large-scale outlines, in L* units (0 for a flat image)."""
    lum = np.ascontiguousarray(lightness, dtype=np.float32)
    s = max(scale, 1 / 16)
    return float(np.median(np.abs(cv2.GaussianBlur(lum, (0, 0), 6 * s) - cv2.GaussianBlur(lum, (0, 0), 16 * s))))
