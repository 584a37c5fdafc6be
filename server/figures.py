"""Matplotlib figures as PNG bytes, and PNGs embedded in a self-contained HTML page.

Shared by the privacy audit report (server/audit/render.py), a run's plots
(server/plots.py) and `fedvault report`: one way to render headless and one way to
embed, so every page opens offline and archives as one file.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # no display: servers and CI render headless
import matplotlib.pyplot as plt  # noqa: E402

DPI = 90


def png_bytes(fig) -> bytes:
    """The figure as PNG; the figure is closed (pyplot keeps every open one alive)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def embedded_figure(name: str, png: bytes, caption: str | None = None) -> str:
    """An HTML <figure> holding the PNG inline (base64): no file beside the page, no URL."""
    data = base64.b64encode(png).decode()
    label = html.escape(name, quote=True)
    return (f'<figure><img class="figure" alt="{label}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption or name)}</figcaption></figure>")
