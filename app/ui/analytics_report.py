"""The Analytics page as a PDF report (fpdf2): the headline figures, the least utilised branches, the definitions."""

from __future__ import annotations

from datetime import UTC, datetime

from fpdf.enums import XPos, YPos

from app.ui.analytics import format_change, format_value, period_caption
from services.agreement import BRAND, MUTED, BrandedPdf  # the agreement's typefaces and colours
from services.analytics import METRICS, SNAPSHOTS, Overview

BRANCH_ROWS = 60
_BRANCH_COLUMNS = (("code", "Code", 14), ("name", "Branch", 46), ("utilisation", "Util.", 14),
                   ("available_days", "Avail. days", 18), ("idle_cars", "Idle", 11), ("in_maintenance", "Maint.", 12),
                   ("service_backlog", "Due", 10), ("one_way_drift", "Drift", 11), ("revenue", "Revenue", 22),
                   ("revpac", "RevPAC", 16))


class _Report(BrandedPdf):
    def __init__(self, title: str) -> None:
        super().__init__(margins=(14, 14, 14), bottom=16)
        self.report_title = title

    def footer(self) -> None:
        self.set_y(-11)
        self.use_font(7.5, colour=MUTED)
        self.cell(0, 4, f"{self.report_title} · page {self.page_no()} of {{nb}}", align="C")

    def heading(self, text: str) -> None:
        self.ln(3)
        self.use_font(11, "B", BRAND)
        self.cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def render_report(view: Overview, currency: str, *, filters: str, generated_at: datetime | None = None,
                  company: str = "Fleetdesk") -> bytes:
    """The page's figures as PDF bytes: what a fleet manager would print or mail."""
    generated_at = generated_at or datetime.now(UTC)
    pdf = _Report(f"{company} operations analytics")
    pdf.set_creation_date(generated_at)
    pdf.set_title(pdf.report_title)
    pdf.set_author(company)
    pdf.add_page()
    pdf.use_font(18, "B", BRAND)
    pdf.cell(0, 9, "Operations analytics", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.use_font(9, colour=MUTED)
    pdf.multi_cell(0, 4.5, f"{period_caption(view)}\n{filters}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.heading("Headline figures")
    pdf.use_font(8.5)
    with pdf.table(col_widths=(52, 34, 34, 34), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
                   line_height=5.2, first_row_as_headings=True) as table:
        table.row(("Figure", "This period", "Previous period", "Change"))
        for figure in view.figures:
            table.row((figure.spec.label, format_value(figure.spec, figure.value, currency),
                       format_value(figure.spec, figure.previous, currency),
                       format_change(figure, currency) or "—"))

    shown = view.by_branch.head(BRANCH_ROWS)
    pdf.heading(f"Branches, least utilised first ({len(shown)} of {len(view.by_branch):,})")
    pdf.use_font(7.5)
    specs = {m.key: m for m in METRICS + SNAPSHOTS}
    with pdf.table(col_widths=tuple(width for _, _, width in _BRANCH_COLUMNS), line_height=4.4,
                   text_align=("LEFT", "LEFT") + ("RIGHT",) * (len(_BRANCH_COLUMNS) - 2)) as table:
        table.row(tuple(label for _, label, _ in _BRANCH_COLUMNS))
        for row in shown.itertuples():
            cells = []
            for key, _, _ in _BRANCH_COLUMNS:
                value = getattr(row, key)
                cells.append(format_value(specs[key], value, currency) if key in specs else
                             "—" if value is None or value != value else str(value))
            table.row(tuple(cells))

    pdf.heading("Definitions")
    pdf.use_font(8)
    for spec in METRICS + SNAPSHOTS:
        definition = spec.definition.replace("N days", f"{view.period.idle_days} days")
        pdf.multi_cell(0, 4.2, f"**{spec.label}**: {definition}", markdown=True, new_x=XPos.LMARGIN,
                       new_y=YPos.NEXT)
    return bytes(pdf.output())
