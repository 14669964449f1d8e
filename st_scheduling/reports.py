"""What people read: the funnel chart and the plain-text summaries `make demo` prints."""

from __future__ import annotations

import base64
import io

import duckdb

FUNNEL = """
    SELECT {label}, milestone, sum(sessions_reached)::BIGINT
    FROM marts.milestone_funnel
    WHERE grain = 'day' AND period_start > (SELECT max(period_start) FROM marts.milestone_funnel) - ?::INTEGER
    GROUP BY ALL ORDER BY 1, min(milestone_index)
"""


def funnel_rows(con: duckdb.DuckDBPyConnection, days: int = 7) -> list[tuple[str, int]]:
    """(milestone, sessions reached) over the last `days` days with data, all tenants and schedulers."""
    return [(m, n) for _, m, n in con.execute(FUNNEL.format(label="'all'"), [days]).fetchall()]


def funnel_rows_by_scheduler(con: duckdb.DuckDBPyConnection, days: int = 30) -> dict[str, list[tuple[str, int]]]:
    """Per scheduler (by name, else id): (milestone, sessions reached) over the last `days` days with data."""
    found: dict[str, list[tuple[str, int]]] = {}
    name = "coalesce(scheduler_name, scheduler_id) || ' (' || tenant_id || ')'"
    for label, milestone, n in con.execute(FUNNEL.format(label=name), [days]).fetchall():
        found.setdefault(label, []).append((milestone, n))
    return found


def funnel_chart_png(funnels: dict[str, list[tuple[str, int]]], title: str) -> bytes:
    """One horizontal funnel per entry (at most 12, the largest first), each milestone as a share of opened."""
    import matplotlib  # imported on use: loading the definitions should not pay for it

    matplotlib.use("Agg")  # no display: render to memory
    import matplotlib.pyplot as plt

    shown = sorted(funnels.items(), key=lambda kv: -(kv[1][0][1] if kv[1] else 0))[:12]
    columns = min(3, max(1, len(shown)))
    rows = -(-len(shown) // columns) or 1
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.0 * rows), dpi=90, squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, (name, funnel) in zip(axes.flat, shown):
        labels, values = [m for m, _ in funnel], [n for _, n in funnel]
        top = max(values) if values and max(values) else 1
        bars = ax.barh(labels[::-1], values[::-1], color="#4f6bed")
        for bar, value in zip(bars, values[::-1]):
            ax.text(
                bar.get_width() + top * 0.01,
                bar.get_y() + bar.get_height() / 2,
                f"{value:,} ({value / top:.0%})",
                va="center",
                fontsize=7,
            )
        ax.set_xlim(0, top * 1.35)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _table(headers: list[str], rows: list[tuple]) -> str:
    cells = [[str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    body = [
        "  ".join(
            c.rjust(w) if c.replace(",", "").replace(".", "").replace("%", "").isdigit() else c.ljust(w)
            for c, w in zip(row, widths)
        )
        for row in cells
    ]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def summary(con: duckdb.DuckDBPyConnection) -> str:
    """Tables and row counts, the last 7 days' funnel, the top campaigns, bookings per week, and the latest
    week's costliest blockers."""
    parts = []
    tables = con.execute(
        "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
        "WHERE schema_name IN ('raw', 'marts') ORDER BY 1"
    ).fetchall()
    counts = [(name, f"{con.execute(f'SELECT count(*) FROM {name}').fetchone()[0]:,}") for name, _ in tables]
    parts.append("Tables\n" + _table(["table", "rows"], counts))
    has_marts = any(name == "marts.milestone_funnel" for name, _ in tables)
    if not has_marts:
        return "\n\n".join(parts)
    funnel = funnel_rows(con)
    opened = funnel[0][1] if funnel and funnel[0][1] else 1
    parts.append(
        "Funnel, last 7 days (all schedulers)\n"
        + _table(["milestone", "sessions", "of opened"], [(m, f"{n:,}", f"{n / opened:.0%}") for m, n in funnel])
    )
    campaigns = con.execute(
        """
        SELECT tenant_id, arg_max(channel, sessions), campaign, sum(booked_sessions)::BIGINT AS booked,
            sum(sessions)::BIGINT AS sessions
        FROM marts.campaign_attribution WHERE attribution_model = 'session' AND campaign <> '(none)'
        GROUP BY tenant_id, coalesce(campaign_id, campaign), campaign ORDER BY booked DESC, campaign LIMIT 5
        """
    ).fetchall()
    parts.append(
        "Top 5 campaigns by booked sessions\n"
        + _table(
            ["tenant", "channel", "campaign", "booked", "sessions"],
            [(t, c, n, f"{b:,}", f"{s:,}") for t, c, n, b, s in campaigns],
        )
    )
    weekly = con.execute(
        """
        SELECT period_start, sum(jobs)::BIGINT, sum(bookings)::BIGINT, sum(abandoned_sent_to_bookings)::BIGINT,
               sum(abandoned_sent_to_leads)::BIGINT
        FROM marts.booking_volume WHERE grain = 'week' AND date_basis = 'session_date'
        GROUP BY ALL ORDER BY period_start DESC LIMIT 8
        """
    ).fetchall()
    parts.append(
        "Jobs and bookings per week (by session date, latest 8 weeks)\n"
        + _table(
            ["week of", "jobs", "bookings", "abandoned→booking", "abandoned→lead"],
            [(str(w), f"{j:,}", f"{b:,}", f"{ab:,}", f"{al:,}") for w, j, b, ab, al in weekly],
        )
    )
    blockers = con.execute(
        """
        SELECT blocker_type, sum(sessions_blocked)::BIGINT, sum(estimated_bookings_lost)
        FROM marts.blocker_impact WHERE week_start = (SELECT max(week_start) FROM marts.blocker_impact)
        GROUP BY ALL ORDER BY 3 DESC, 1 LIMIT 5
        """
    ).fetchall()
    parts.append(
        "Costliest blockers, latest week (estimated bookings lost)\n"
        + _table(
            ["blocker", "sessions blocked", "bookings lost"], [(b, f"{n:,}", f"{lost:.1f}") for b, n, lost in blockers]
        )
    )
    return "\n\n".join(parts)
