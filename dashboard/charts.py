"""Plain charts for the page: a patient's trend, the overlay colour legend, channel importance.

Overlays of maps on photos live in dashboard/figures.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.assessment import DEFAULT_LABELS, DEFAULT_MAX_SCORE, DEFAULT_THRESHOLDS
from dashboard.easi import MAX_EASI
from dashboard.figures import FONT, band_colors, check_bands


def trend_figure(
    trend: pd.DataFrame, easi_label: str = "EASI", max_score: float = DEFAULT_MAX_SCORE
) -> go.Figure:
    """A patient's visits: one line per sign (0..max_score, left axis) and EASI (right axis).

    trend: long table with columns visit_date, series, value, change_pct (as returned by
    `history.HistoryStore.trend`); hover shows the change from baseline in %.
    """
    missing = {"visit_date", "series", "value", "change_pct"} - set(trend.columns)
    if missing:
        raise ValueError(f"trend table lacks columns {sorted(missing)}")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for series, part in trend.groupby("series", sort=False):
        change = [
            "baseline" if i == 0 else ("n/a" if pd.isna(c) else f"{c:+.0f}% from baseline")
            for i, c in enumerate(part["change_pct"])
        ]
        is_easi = series == easi_label
        fig.add_trace(
            go.Scatter(
                x=part["visit_date"],
                y=part["value"],
                mode="lines+markers",
                name=series,
                customdata=change,
                line=dict(width=3 if is_easi else 2, dash="solid" if is_easi else "dot"),
                hovertemplate=f"{series}: %{{y:.2f}} (%{{customdata}})<extra></extra>",
            ),
            secondary_y=is_easi,
        )
    easi = trend.loc[trend["series"] == easi_label, "value"]
    # EASI axis: 0 up to a round number above the highest value (0..72 would flatten it).
    top = max(5.0, float(np.ceil(easi.max() * 1.2 / 5) * 5)) if len(easi) else 5.0
    fig.update_yaxes(title_text=f"sign score (0-{max_score:g})", range=[0, max_score * 1.04],
                     secondary_y=False)  # fmt: skip
    fig.update_yaxes(title_text=f"EASI (0-{MAX_EASI:g})", range=[0, min(top, MAX_EASI) * 1.04],
                     showgrid=False, tickmode="auto", nticks=6, secondary_y=True)  # fmt: skip
    fig.update_xaxes(title_text="visit date", tickformat="%d %b %Y", type="date")
    fig.update_layout(
        height=380,
        margin=dict(l=10, r=10, t=30, b=10),
        font=dict(family=FONT, size=13),
        hovermode="x unified",
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def legend_figure(
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    max_score: float = DEFAULT_MAX_SCORE,
    labels: Sequence[str] = DEFAULT_LABELS,
) -> go.Figure:
    """The overlay's colour bands as one horizontal bar on 0..max_score, labelled."""
    check_bands(thresholds, labels, max_score)
    edges = [0.0, *thresholds, max_score]
    fig = go.Figure()
    for i, (r, g, b, a) in enumerate(band_colors(len(labels))):
        fig.add_trace(go.Bar(
            x=[edges[i + 1] - edges[i]], y=[""], base=edges[i], orientation="h",
            marker=dict(color=f"rgba({r},{g},{b},{max(a, 0.0)})", line=dict(color="#c9d3dd", width=1)),
            text=labels[i], textposition="inside", insidetextanchor="middle", textangle=0,
            name=labels[i],
            hovertemplate=f"{labels[i]}: {edges[i]:g} to {edges[i + 1]:g}<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(barmode="overlay", showlegend=False, height=70, bargap=0,
                      margin=dict(l=5, r=5, t=5, b=20), font=dict(family=FONT, size=12),
                      plot_bgcolor="white", paper_bgcolor="white")  # fmt: skip
    fig.update_xaxes(range=[0, max_score], tickvals=edges, fixedrange=True)
    fig.update_yaxes(visible=False, fixedrange=True)
    return fig


def channel_importance_figure(importance: Mapping[str, float]) -> go.Figure:
    """Horizontal bars of {channel: weight} (non-negative, summing to 1), largest on top."""
    if not importance:
        raise ValueError("channel importance is empty")
    if any(v < 0 for v in importance.values()):
        raise ValueError("channel importance must be non-negative")
    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in items],
            y=[k for k, _ in items],
            orientation="h",
            marker_color="#3b6e8f",
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=60 + 28 * len(items),
        margin=dict(l=10, r=10, t=30, b=10),
        font=dict(family=FONT, size=13),
        xaxis=dict(tickformat=".0%"),
        title=dict(text="channel importance", x=0.01),
    )
    return fig
