"""What ``tritoncls monitor`` shows: the table on stdout, and monitor.json, monitor.md and monitor.png."""

from __future__ import annotations

import logging
from pathlib import Path

from tritoncls.common.files import produce_file, write_json, write_text
from tritoncls.monitor.compare import Distribution, MonitorReport, Rate
from tritoncls.monitor.config import DRIFT, NOT_ENOUGH

log = logging.getLogger(__name__)

JSON_FILE, MARKDOWN_FILE, PLOT_FILE = "monitor.json", "monitor.md", "monitor.png"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def _detail(d: Distribution) -> str:
    parts = []
    if d.chi_square is not None:
        test = d.chi_square
        parts.append(f"chi2 {test.statistic:.1f} (df {test.dof}) p={test.p_value:.2g}"
                     + (f", {len(test.merged)} small bins merged" if test.merged else ""))
    shifted = ", ".join(f"{name} {_percent(a)} -> {_percent(b)}" for name, a, b in d.most_shifted())
    if shifted:
        parts.append(f"most shifted: {shifted}")
    return "; ".join(parts)


def _rate_line(rate: Rate) -> str:
    return f"{rate.name} rate: {_percent(rate.live)} of {rate.total:g} (reference {_percent(rate.reference)}; {rate.note})"


def verdict_line(report: MonitorReport) -> str:
    if report.verdict == DRIFT:
        return f"verdict: DRIFT in {', '.join(report.drifted)} (exit {report.exit_status})"
    if report.verdict == NOT_ENOUGH:
        return (f"verdict: not enough traffic: {report.texts:g} texts, fewer than --min_texts {report.min_texts} "
                f"(exit {report.exit_status})")
    return f"verdict: no drift (exit {report.exit_status})"


def table(report: MonitorReport) -> str:
    """The report as plain text, one row per distribution."""
    lines = [f"model {report.model or '-'}: {report.texts:g} texts since {report.since} ({report.source})",
             f"reference {report.reference} ({report.reference_texts} texts); drift: PSI >= {report.psi_threshold:g}"
             f" (labels also chi-square p < {report.alpha:g})", ""]
    width = max(12, *(len(d.name) for d in report.distributions))
    lines.append(f"{'distribution':<{width}}  {'texts':>8}  {'PSI':>7}  {'verdict':<13}  detail")
    for d in report.distributions:
        index = "-" if d.psi is None else f"{d.psi:.3f}"
        lines.append(f"{d.name:<{width}}  {d.live_total:>8g}  {index:>7}  {d.verdict:<13}  {_detail(d)}".rstrip())
    lines += ["", *(_rate_line(r) for r in report.rates)]
    refused = ", ".join(f"{reason} {count:g}" for reason, count in report.refused.items() if count)
    lines.append(f"refused requests: {refused or 'none'}")
    lines += [f"note: {note}" for note in report.notes]
    lines.append(verdict_line(report))
    return "\n".join(lines)


def markdown(report: MonitorReport, plot: str | None = PLOT_FILE) -> str:
    """The report as Markdown, with the plot beside it."""
    out = [f"# Drift report: {report.model or '-'}", "",
           f"- live: {report.texts:g} texts since {report.since}, from {report.source}",
           f"- reference: `{report.reference}` ({report.reference_texts} texts)",
           f"- drift when PSI >= {report.psi_threshold:g} (labels: and chi-square p < {report.alpha:g}); "
           f"no verdict below {report.min_texts} texts",
           f"- **{verdict_line(report).removeprefix('verdict: ')}**", "",
           "| distribution | texts | PSI | verdict | detail |", "|---|---:|---:|---|---|"]
    for d in report.distributions:
        index = "-" if d.psi is None else f"{d.psi:.3f}"
        out.append(f"| {d.name} | {d.live_total:g} | {index} | {d.verdict} | {_escape(_detail(d))} |")
    out += ["", "| rate | live | reference | note |", "|---|---:|---:|---|"]
    out += [f"| {r.name} | {_percent(r.live)} | {_percent(r.reference)} | {r.note} |" for r in report.rates]
    labels = report.distributions[0]
    before, after = labels.shares()
    out += ["", "| # | label | reference | live |", "|---:|---|---:|---:|"]
    out += [f"| {i} | {_escape(name)} | {_percent(a)} | {_percent(b)} |"
            for i, (name, a, b) in enumerate(zip(labels.bins, before, after))]
    refused = ", ".join(f"{reason} {count:g}" for reason, count in report.refused.items() if count)
    out += ["", f"Refused requests: {refused or 'none'}."]
    out += [f"\nNote: {note}." for note in report.notes]
    if plot:
        out += ["", f"![reference and live shares per distribution]({plot})"]
    return "\n".join(out) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(report: MonitorReport, folder: str | Path) -> dict[str, Path]:
    """monitor.json, monitor.md and monitor.png in ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plotted = plot(report, folder / PLOT_FILE)
    paths = {"json": write_json(folder / JSON_FILE, report.to_dict()),
             "markdown": write_text(folder / MARKDOWN_FILE, markdown(report, PLOT_FILE if plotted else None))}
    if plotted:
        paths["plot"] = plotted
    return paths


def plot(report: MonitorReport, path: Path) -> Path | None:
    """Reference and live shares, side by side, one panel per distribution (None: matplotlib is missing)."""
    try:
        import matplotlib
    except ImportError:
        log.warning("matplotlib is not installed: no %s", path.name)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cjk = _cjk_fonts()
    if cjk:
        plt.rcParams["font.sans-serif"] = cjk[:1] + plt.rcParams["font.sans-serif"]
    panels = report.distributions
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
    for ax, d in zip(axes[:, 0], panels):
        before, after = d.shares()
        x = np.arange(len(d.bins))
        ax.bar(x - 0.2, before, width=0.4, label="reference", color="#9aa5b1")
        ax.bar(x + 0.2, after, width=0.4, label="live", color="#d9534f" if d.verdict == "drift" else "#337ab7")
        names = d.bins if cjk or all(b.isascii() for b in d.bins) else tuple(f"#{i}" for i in range(len(d.bins)))
        ax.set_xticks(x, names, rotation=45 if len(d.bins) > 6 else 0, ha="right" if len(d.bins) > 6 else "center",
                      fontsize=8)
        index = "-" if d.psi is None else f"{d.psi:.3f}"
        ax.set_title(f"{d.name}: PSI {index}, {d.verdict}", fontsize=10)
        ax.set_ylabel("share")
        ax.legend(fontsize=8)
    fig.suptitle(f"{report.model or '-'}: {report.texts:g} texts since {report.since}", fontsize=11)
    fig.tight_layout()
    try:
        return produce_file(path, lambda tmp: fig.savefig(tmp, dpi=100))
    finally:
        plt.close(fig)


def _cjk_fonts() -> list[str]:
    from matplotlib import font_manager

    return [f.name for f in font_manager.fontManager.ttflist if any(k in f.name for k in ("CJK", "WenQuanYi", "Hei",
                                                                                          "Ming"))]
