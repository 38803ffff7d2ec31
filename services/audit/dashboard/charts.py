"""Inline SVG charts (no JavaScript, no CDN): what the dashboard draws."""
from __future__ import annotations

from markupsafe import Markup, escape

PALETTE = ("#c0392b", "#2c7fb8", "#7fb800", "#f39c12", "#8e44ad", "#16a085")


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")


def hbar_chart(rows: list[tuple[str, float, str]], *, en: str, width: int = 640, unit: str = "",
               colour: str = PALETTE[1]) -> Markup:
    """Horizontal bars: rows of (label, value, tooltip)."""
    bar_h, gap, label_w = 18, 6, 190
    height = max(1, len(rows)) * (bar_h + gap) + 10
    top = max([v for _, v, _ in rows] or [1]) or 1
    parts = [f'<svg class="chart" role="img" aria-label="{escape(en)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(en)}</title>']
    for i, (label, value, tip) in enumerate(rows):
        y = 5 + i * (bar_h + gap)
        w = int((width - label_w - 90) * (value / top))
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="12">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" fill="{colour}">'
                     f'<title>{escape(tip)}</title></rect>'
                     f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{_fmt(value)}{escape(unit)}</text>')
    if not rows:
        parts.append('<text x="10" y="20" font-size="12">暂无数据 (no data)</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def grouped_bars(categories: list[str], series: list[tuple[str, str, list[float | None]]], *, en: str,
                 width: int = 640, height: int = 240) -> Markup:
    """Vertical grouped bars: categories on x; series of (label_zh, label_en, values)."""
    left, bottom, top_pad = 60, 30, 24
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = max([v for _, _, vals in series for v in vals if v] or [1]) or 1
    group_w = plot_w / max(1, len(categories))
    bar_w = max(4, group_w * 0.8 / max(1, len(series)))
    parts = [f'<svg class="chart" role="img" aria-label="{escape(en)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(en)}</title>',
             f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" stroke="#555"/>',
             f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" font-size="11">{_fmt(top)}</text>']
    for s, (zh, en_label, _) in enumerate(series):
        parts.append(f'<rect x="{left + s * 130}" y="4" width="10" height="10" fill="{PALETTE[s % len(PALETTE)]}"/>'
                     f'<text x="{left + s * 130 + 14}" y="13" font-size="11">{escape(zh)}<title>{escape(en_label)}'
                     f'</title></text>')
    for c, category in enumerate(categories):
        x0 = left + c * group_w + group_w * 0.1
        for s, (zh, en_label, values) in enumerate(series):
            value = values[c] or 0
            h = int(plot_h * value / top)
            x = x0 + s * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{top_pad + plot_h - h}" width="{bar_w - 2:.1f}" height="{max(h, 0)}" '
                         f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(category)} {escape(en_label)}: '
                         f'{_fmt(value)}</title></rect>')
        parts.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{height - 10}" text-anchor="middle" font-size="12">'
                     f'{escape(category)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
