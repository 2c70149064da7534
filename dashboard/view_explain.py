"""The page's "why this score" section, the channel picker and channel importance (widgets).

Saliency is computed on demand (a button per photo: ~1-3 s on a CPU) and kept in
st.session_state for that photo and method, so reruns only redraw it. The channel picker
changes what is displayed, never what is scored: the model always sees every channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import streamlit as st

from dashboard import charts
from dashboard import explain_figures as ef
from dashboard.figures import PLOTLY_CONFIG

log = logging.getLogger(__name__)
METHODS = {
    "gradient": "gradient: |d score / d pixel|",
    "jacobian": "Jacobian map: positive evidence only (sharper)",
}
RGB_NAMES = ("red", "green", "blue")
_EXPLAINED = "explained"  # session key: {photo key: {method: explain_image result}}
_STACKS = "channel_stacks"  # session key: {photo key: (h, w, C) display-size image}


def _cache(name: str, key: str) -> dict:
    """st.session_state[name], with entries of other batches dropped (keys are f"{batch}_{i}")."""
    store = st.session_state.setdefault(name, {})
    batch = key.split("_", 1)[0]
    for old in [k for k in store if k.split("_", 1)[0] != batch]:
        del store[old]
    return store


def learned_channel_importance(predictor: Any) -> dict[str, float] | None:
    """{channel: weight} from the model's mixing layer, or None (no mixing layer, no model)."""
    if getattr(predictor, "net", None) is None or not getattr(predictor, "channels", None):
        return None
    try:
        from model.explain.importance import learned_importance

        return learned_importance(predictor)
    except ImportError:  # fall back to the network's own reading of the layer
        imp = predictor.net.channel_importance()
        if imp is None:
            return None
        w = np.clip(imp.detach().float().cpu().numpy(), 0, None)
        w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
        return dict(zip(predictor.channels, map(float, w), strict=True))
    except Exception:  # never lose the page over a model-info chart
        log.exception("reading the learned channel importance failed")
        return None


def channel_importance_sidebar(predictor: Any) -> None:
    """The learned channel importance as a bar chart, when the model has a mixing layer."""
    importance = learned_channel_importance(predictor)
    if not importance:
        return
    st.markdown("**Channel importance**",
                help="Learned weights of the model's input channel mixing layer: the share "
                     "of what the network sees that comes from each channel (sums to 100 %).")  # fmt: skip
    fig = charts.channel_importance_figure(importance)
    fig.update_layout(title=None, margin=dict(l=5, r=5, t=5, b=10))
    st.plotly_chart(fig, key="channel_importance", config={"displayModeBar": False})


def is_multichannel(channels: Sequence[str]) -> bool:
    """True when a channel picker makes sense: 2+ channels that are not plain red/green/blue."""
    names = tuple(str(c).lower() for c in channels)
    return len(names) >= 2 and names != RGB_NAMES


def channel_stack(
    predictor: Any, name: str, data: bytes, shape: tuple[int, int]
) -> np.ndarray | None:
    """The photo's C channels at the display size (h, w) = shape, or None if not decodable."""
    decode = getattr(predictor, "decode", None)
    if decode is None or not data:
        return None
    try:
        from model.inference import resize  # any channel count (multi-channel photos)

        img, _ = decode(data, name)
        if img.shape[:2] != tuple(shape):
            import cv2

            shrink = max(img.shape[0] / shape[0], img.shape[1] / shape[1])
            img = resize(
                img, shape[1], shape[0], cv2.INTER_AREA if shrink >= 2 else cv2.INTER_LINEAR
            )
        return img
    except Exception:  # it was decoded once to be scored; a failure here only loses the view
        log.exception("decoding %s for display failed", name)
        return None


def channel_picker(predictor: Any, photo: Any, key: str, data: bytes | None) -> np.ndarray:
    """For multi-channel models: pick 1-3 channels to view; returns the (h, w, 3) display image.

    The default view (and any other model) is the photo's own display image.
    """
    channels = list(getattr(predictor, "channels", []))
    if not is_multichannel(channels):
        return photo.image
    stacks = _cache(_STACKS, key)
    if key not in stacks:
        stacks[key] = channel_stack(predictor, photo.name, data, photo.image.shape[:2])
    stack = stacks[key]
    if stack is None or stack.shape[2] != len(channels):
        return photo.image
    c = st.columns([3, 1])
    default = [channels[i] for i in ef.default_view_channels(len(channels))]
    picked = c[0].multiselect(
        "Channels to view", channels, default=default, max_selections=3, key=f"view_channels_{key}",
        help="Display only: the scores always use every channel. One channel: grayscale; "
             "two: magenta/green; three: red, green, blue.",
    )  # fmt: skip
    stretch = c[1].checkbox("Stretch contrast", key=f"view_stretch_{key}",
                            help="Spread each shown channel's 1st-99th percentile.")  # fmt: skip
    if not picked:
        st.caption("No channel picked: showing the default view.")
        picked = default
    return ef.channel_view(stack, [channels.index(p) for p in picked], stretch=stretch)


def why_this_score(
    predictor: Any,
    a: Any,
    photo: Any,
    key: str,
    data: bytes | None,
    shown: np.ndarray | None = None,
) -> None:
    """The "Why this score?" expander of one photo: saliency per sign and per channel."""
    with st.expander("Why this score?"):
        st.caption("Saliency: how strongly each pixel of each input channel drives a sign's "
                   "score (the gradient of the score with respect to the image). It shows what "
                   "the model looked at, not whether it is right.")  # fmt: skip
        if not data:
            st.info("The photo's file is no longer in this session: score it again to explain it.")
            return
        c = st.columns([2, 1])
        method = c[0].selectbox("Method", list(METHODS), key=f"explain_method_{key}",
                                format_func=METHODS.get)  # fmt: skip
        explained = _cache(_EXPLAINED, key).setdefault(key, {})
        if c[1].button("Compute saliency", key=f"explain_{key}", disabled=method in explained,
                       help="A few seconds on a CPU."):  # fmt: skip
            with st.spinner("Computing the saliency maps..."):
                try:
                    from model.explain.saliency import explain_image

                    explained[method] = explain_image(predictor, data, age=a.age, sex=a.sex,
                                                      method=method)  # fmt: skip
                except Exception as exc:  # say so, keep the page
                    log.exception("explaining %s failed", photo.name)
                    st.error(f"Could not explain {photo.name}: {exc}")
        result = explained.get(method)
        if result is None:
            st.caption("Press **Compute saliency** to see why.")
            return
        show_explanation(result, photo, key, shown)


def show_explanation(result: dict, photo: Any, key: str, shown: np.ndarray | None = None) -> None:
    """Draw one explain_image result: overlays per sign, then one sign per channel."""
    signs, channels = result["signs"], result["channels"]
    h, w = result["image"].shape[:2]
    background = result["image"] if shown is None else ef.fit_image(shown, (h, w))
    fig = ef.saliency_figure(background, result["projected"], signs, scores=photo.scores)
    st.plotly_chart(fig, key=f"saliency_{key}", config=PLOTLY_CONFIG)
    sign = st.selectbox("Sign, per input channel", signs, key=f"explain_sign_{key}")
    left, right = st.columns([2, 1])
    share = result["channel_share"][sign]
    per_channel = ef.channel_saliency_figure(result["saliency"][sign], channels, share=share,
                                             title=f"{sign}: saliency per channel")  # fmt: skip
    left.plotly_chart(per_channel, key=f"saliency_channels_{key}", config=PLOTLY_CONFIG)
    bars = charts.channel_importance_figure(share)
    bars.update_layout(title=dict(text=f"{sign}: share per channel", x=0.01))
    right.plotly_chart(bars, key=f"saliency_share_{key}", config=PLOTLY_CONFIG)
    right.caption("Share of the sign's saliency that falls in each channel (sums to 100 %).")
