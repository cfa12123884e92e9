"""The overview's bar charts as geometry: hourly counts in, rectangles and labels out, in whole
pixels, for a template to write as inline SVG. Drawn on the server: no JavaScript, no front-end
build and nothing fetched from elsewhere, so the page works under a strict Content-Security-Policy.
Colours come from classes (mail/static/mail/admin.css), not from inline styles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

SLOT = 18  # pixels per hour
LEFT, TOP, PLOT_HEIGHT, BOTTOM = 48, 12, 90, 20
LABEL_EVERY_HOURS = 6


@dataclass(frozen=True)
class Bar:
    series: str
    x: int
    y: int
    width: int
    height: int
    count: int
    label: str  # the bar's tooltip: "14:00–15:00 UTC: 3 sent"


@dataclass(frozen=True)
class Tick:
    x: int
    label: str


@dataclass(frozen=True)
class Legend:
    series: str
    total: int


@dataclass(frozen=True)
class Panel:
    title: str
    key: str  # "accepted", or the provider's name
    legend: list[Legend]
    bars: list[Bar]
    ticks: list[Tick]
    peak: int
    width: int
    height: int
    baseline: int
    plot_top: int
    plot_left: int
    plot_right: int


def panel(title: str, key: str, hours: list[datetime], series: dict[str, list[int]]) -> Panel:
    """One chart: for each hour, a bar per series side by side, scaled to this chart's peak (at
    least 1, so an idle day draws an empty axis rather than dividing by zero)."""
    peak = max([1, *(n for counts in series.values() for n in counts)])
    gap = 2
    width = (SLOT - 2 * gap) // len(series)
    bars = []
    for column, (name, counts) in enumerate(series.items()):
        for n, (hour, count) in enumerate(zip(hours, counts, strict=True)):
            if not count:
                continue
            height = max(1, round(count / peak * PLOT_HEIGHT))
            bars.append(
                Bar(
                    series=name,
                    x=LEFT + n * SLOT + gap + column * width,
                    y=TOP + PLOT_HEIGHT - height,
                    width=width - 1,
                    height=height,
                    count=count,
                    label=f"{_clock(hour)}–{_clock(hour + timedelta(hours=1))} UTC: {count} {name}",
                )
            )
    ticks = [Tick(LEFT + n * SLOT, _clock(hour)) for n, hour in enumerate(hours) if hour.hour % LABEL_EVERY_HOURS == 0]
    return Panel(
        title=title,
        key=key,
        legend=[Legend(name, sum(counts)) for name, counts in series.items()],
        bars=bars,
        ticks=ticks,
        peak=peak,
        width=LEFT + len(hours) * SLOT + 8,
        height=TOP + PLOT_HEIGHT + BOTTOM,
        baseline=TOP + PLOT_HEIGHT,
        plot_top=TOP,
        plot_left=LEFT,
        plot_right=LEFT + len(hours) * SLOT,
    )


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M")
