"""tune's outputs: tune.json (the chosen build options), tune_results.json (every measurement),
tune_report.md and tune_plot.png (throughput vs p99 of every candidate, the Pareto front, the budget)."""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritoncls.tune.config import OPTIONS_FILE, PLOT_FILE, REPORT_FILE, RESULTS_FILE, config_dict
from tritoncls.tune.search import Measured, Point, pareto_front

if TYPE_CHECKING:
    from tritoncls.tune.config import TuneOutcome

log = logging.getLogger(__name__)


def write_outputs(outcome: TuneOutcome, export_dir: Path) -> dict[str, Path]:
    """Every file of a tune run, into its output folder; tune.json only when a candidate met the budget."""
    from tritoncls.builder.options import write_options

    out = outcome.config.output_dir
    summary = summarize(outcome)
    files = {"results": out / RESULTS_FILE}
    files["results"].write_text(json.dumps(results_record(outcome, summary), indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    options = out / OPTIONS_FILE
    options.unlink(missing_ok=True)  # a stale tune.json must not outlive a run that found nothing
    best = outcome.result.best
    if best is not None:
        extra = {"candidate": best.candidate.name, "latency_budget_ms": outcome.config.latency_budget_ms,
                 "summary": summary, "export": str(export_dir.resolve())}
        files["options"] = write_options(options, best.candidate.build_options(), outcome.machine, extra)
    if outcome.config.plots:
        plot = write_plot(outcome, out / PLOT_FILE)
        if plot:
            files["plot"] = plot
    files["report"] = out / REPORT_FILE
    files["report"].write_text(render_markdown(outcome, summary, export_dir, "plot" in files), encoding="utf-8")
    return files


def _best_round(rounds: list[Measured], budget_ms: float) -> float:
    """The best of the rounds (other load only ever slows a round down)."""
    return max((m.score(budget_ms) for m in rounds), default=0.0)


def _point(rounds: list[Measured], batch_size: int, concurrency: int) -> float | None:
    point = _fastest_point(rounds, batch_size, concurrency)
    return point.texts_per_s if point else None


def summarize(outcome: TuneOutcome) -> dict[str, Any]:
    """The headline figures (docs/tune.md): tuned / default at the budget, and the tuned workload (single texts, or
    requests of ``request_texts``) at the highest concurrency / the in-process length-sorted rate."""
    budget, n = outcome.config.latency_budget_ms, outcome.config.request_texts
    final = outcome.final
    top = max(outcome.config.concurrencies)
    out: dict[str, Any] = {"met": outcome.met, "latency_budget_ms": budget}
    if not final.get("tuned"):
        return out
    default, tuned = _best_round(final["default"], budget), _best_round(final["tuned"], budget)
    out |= {"default_texts_per_s_at_budget": default, "tuned_texts_per_s_at_budget": tuned,
            "tuned_vs_default": tuned / default if default else None,
            "rounds": {role: [m.score(budget) for m in rounds] for role, rounds in final.items()},
            "per_round_ratio": [t.score(budget) / d.score(budget) if d.score(budget) else None
                                for d, t in zip(final["default"], final["tuned"])]}
    precision = outcome.result.best.candidate.get("precision") if outcome.result.best else "fp32"
    rates = {p: run["texts_per_s"] for p, run in outcome.inprocess_sorted.items()}
    tuned_top, w = _point(final["tuned"], n, top), workload_key(n)
    if rates.get(precision) and tuned_top:
        out |= {"inprocess_sorted_texts_per_s": rates, "tuned_precision": precision, "top_concurrency": top,
                "workload": w, f"tuned_{w}_c{top}_texts_per_s": tuned_top,
                f"tuned_{w}_c{top}_vs_inprocess_sorted": tuned_top / rates[precision]}
        if precision != "fp32" and rates.get("fp32"):
            out[f"tuned_{w}_c{top}_vs_inprocess_sorted_fp32"] = tuned_top / rates["fp32"]
        out |= _cpu_summary(final["tuned"], n, top, outcome.inprocess_sorted[precision], outcome.machine)
    return out


def workload_key(request_texts: int) -> str:
    """The workload's name in summary keys: ``single_text``, or ``requests_of_N``."""
    return "single_text" if request_texts == 1 else f"requests_of_{request_texts}"


def _fastest_point(rounds: list[Measured], batch_size: int, concurrency: int) -> Point | None:
    points = [p for m in rounds for p in m.points if (p.batch_size, p.concurrency) == (batch_size, concurrency)]
    return max(points, key=lambda p: p.texts_per_s, default=None)


def _cpu_summary(rounds: list[Measured], request_texts: int, top: int, inprocess: dict[str, Any],
                 machine: dict[str, Any]) -> dict[str, Any]:
    """CPU ms per text of the tuned workload point at ``top`` (its best round) next to the in-process run's."""
    point = _fastest_point(rounds, request_texts, top)
    inprocess_ms = inprocess.get("cpu_ms_per_text") or 0.0
    if point is None or point.cpu is None or inprocess_ms <= 0 or point.cpu.server_ms <= 0:
        return {}
    cores = machine.get("usable_cpus") or 1
    return {"cpu_ms_per_text": {"served": point.cpu.to_dict(), "inprocess": inprocess_ms},
            "inprocess_cpu_vs_served_server_cpu": inprocess_ms / point.cpu.server_ms,
            "cpu_bound_texts_per_s_client_elsewhere": 1e3 * cores / point.cpu.server_ms}


def results_record(outcome: TuneOutcome, summary: dict[str, Any]) -> dict[str, Any]:

    result = outcome.result
    return {"config": config_dict(outcome.config), "machine": outcome.machine, "corpus": outcome.corpus,
            "int8_accuracy": outcome.accuracy, "summary": summary, "seconds": round(outcome.seconds, 1),
            "stopped_early": result.stopped_early,
            "best": result.best.candidate.name if result.best else None,
            "closest": [m.candidate.name for m in result.closest()] if result.best is None else [],
            "candidates": [m.to_dict() for m in result.measured],
            "side_by_side": {role: [m.to_dict() for m in rounds] for role, rounds in outcome.final.items()},
            "inprocess_sorted": outcome.inprocess_sorted}


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_markdown(outcome: TuneOutcome, summary: dict[str, Any], export_dir: Path, plot: bool) -> str:

    c, m, result = outcome.config, outcome.machine, outcome.result
    lines = [
        "# tritoncls tune report", "",
        f"- export: `{export_dir}`; texts: `{c.input}` ({outcome.corpus['texts']} texts, "
        f"{outcome.corpus['mean_tokens']} tokens each on average; corpus bucket edges "
        f"{outcome.corpus['corpus_buckets']})",
        f"- p99 latency budget: **{c.latency_budget_ms:g} ms**; {c.workload} at concurrency "
        f"{', '.join(map(str, c.concurrencies))} (rising, stopped past the budget); time budget {c.budget_minutes:g} min, "
        f"took {outcome.seconds / 60:.1f} min{' (the time budget ended the search early)' if result.stopped_early else ''}",
        f"- measured on: {m['cpu']}, **{m['usable_cpus']} usable cores** ({m['usable_cpus_source']}), "
        f"load average {m['load_average_1m_at_start']} at the start, {m['hostname']}, {m['date']}. The options "
        f"fit this machine's cores: re-run tune on a serving machine with other cores."
        + (f" perf_analyzer ran on CPUs {m['client_cpus']}, off the server's (`--client_cpus`)."
           if m.get("client_cpus") else ""),
        "",
    ]
    lines += _verdict(outcome, summary)
    lines += _side_by_side(outcome, summary)
    lines += _accuracy(outcome)
    if plot:
        lines += [f"![throughput vs p99]({PLOT_FILE})", "",
                  f"Every candidate's points ({c.workload}; throughput vs p99, one line per candidate), the Pareto "
                  "front over all of them, and the budget line.", ""]
    lines += _candidates(outcome)
    if result.best is not None:
        lines += ["## Apply it", "", "```",
                  f"tritoncls build-repo --model {export_dir} --output REPO --options {c.output_dir / OPTIONS_FILE}",
                  "```", "", "Flags given on that command line win over the file.", ""]
    return "\n".join(lines)


def _verdict(outcome: TuneOutcome, summary: dict[str, Any]) -> list[str]:
    result, budget = outcome.result, outcome.config.latency_budget_ms
    if result.best is None:
        lines = [f"## No configuration meets the budget of {budget:g} ms", "",
                 "Closest candidates (lowest p99 first): raise `--latency_budget_ms`, or serve on more cores.", "",
                 "| candidate | lowest p99 ms | texts/s there |", "| --- | --- | --- |"]
        for m in result.closest():
            point = min(m.workload(), key=lambda p: p.p99_ms)
            lines.append(f"| {m.candidate.name} | {point.p99_ms:.1f} | {point.texts_per_s:.1f} |")
        return lines + [""]
    best = result.best
    options = ", ".join(f"`{k}={list(v) if isinstance(v, tuple) else v}`" for k, v in best.candidate.options) or "the defaults"
    return [f"## Chosen: `{best.candidate.name}`", "", f"Build options: {options}.", ""]


def _side_by_side(outcome: TuneOutcome, summary: dict[str, Any]) -> list[str]:
    final, c = outcome.final, outcome.config
    if not final.get("tuned"):
        return []
    lines = ["## Default vs tuned, side by side in this run", "",
             f"Measured again after the search, alternating default and tuned, {c.final_rounds} round(s); a rate is "
             f"the best round (other load on a shared machine only slows a round down).", "",
             "| what | default | tuned | tuned / default |", "| --- | --- | --- | --- |"]
    d, t = summary["default_texts_per_s_at_budget"], summary["tuned_texts_per_s_at_budget"]
    lines.append(f"| **{c.workload}, best within p99 {c.latency_budget_ms:g} ms (texts/s)** | {_f(d)} | {_f(t)} | "
                 f"**{_f(summary['tuned_vs_default'], 2)}** |")
    ratios = ", ".join(_f(r, 2) for r in summary["per_round_ratio"])
    lines.append(f"| ratio per round | | | {ratios} |")
    for batch, conc in c.sweep(side_by_side=True):
        dv, tv = _point(final["default"], batch, conc), _point(final["tuned"], batch, conc)
        p99 = [_p99(final[r], batch, conc) for r in ("default", "tuned")]
        lines.append(f"| {batch} text(s)/request, concurrency {conc}: texts/s (p99 ms) | {_f(dv)} ({_f(p99[0], 0)}) "
                     f"| {_f(tv)} ({_f(p99[1], 0)}) | {_f(tv / dv if dv and tv else None, 2)} |")
    top = summary.get("top_concurrency")
    if top:
        rates, precision, w = summary["inprocess_sorted_texts_per_s"], summary["tuned_precision"], summary["workload"]
        listed = ", ".join(f"{p.upper()} {_f(r)}" for p, r in rates.items())
        lines += ["", f"In-process ONNX Runtime, batch 32, length-sorted, all cores (the best of the rounds, each "
                      f"measured right after that round's served runs, same texts): {listed} texts/s. Tuned "
                      f"{c.workload} at concurrency {top}: {_f(summary[f'tuned_{w}_c{top}_texts_per_s'])} texts/s = "
                      f"**{_f(summary[f'tuned_{w}_c{top}_vs_inprocess_sorted'], 2)}** of the in-process "
                      f"{precision.upper()} rate."]
        vs_fp32 = summary.get(f"tuned_{w}_c{top}_vs_inprocess_sorted_fp32")
        if vs_fp32 is not None:
            lines.append(f"Against the in-process FP32 rate: {_f(vs_fp32, 2)}.")
        lines += _cpu_lines(summary, c.workload, top, outcome.machine)
    return lines + [""]


def _cpu_lines(summary: dict[str, Any], workload: str, top: int, machine: dict[str, Any]) -> list[str]:
    """Where the CPU went at the top concurrency, next to the in-process run's CPU per text."""
    cpu = summary.get("cpu_ms_per_text")
    if not cpu:
        return []
    served, inprocess = cpu["served"], cpu["inprocess"]
    return ["", f"### Where the CPU went: tuned {workload} at concurrency {top}", "",
            "CPU milliseconds per text, every process of the measurement (from `/proc`, its best round):", "",
            "| python models | tritonserver front end (gRPC, scheduling) | perf_analyzer (load generator) | total | "
            "in-process, same texts |", "| --- | --- | --- | --- | --- |",
            f"| {served['models_ms']:.3f} | {served['frontend_ms']:.3f} | {served['client_ms']:.3f} | "
            f"{served['server_ms'] + served['client_ms']:.3f} | {inprocess:.3f} |", "",
            f"The server side (python models and front end) costs {served['server_ms'] / inprocess:.2f}x the "
            f"in-process CPU per text, and the load generator took {served['client_share']:.0%} of the CPU "
            f"used. " + _client_sentence(summary, machine)]


def _client_sentence(summary: dict[str, Any], machine: dict[str, Any]) -> str:
    if machine.get("client_cpus"):
        return (f"perf_analyzer ran on CPUs {machine['client_cpus']}, off the {machine.get('usable_cpus')} CPUs of "
                f"the server and the in-process runs.")
    return (f"On these {machine.get('usable_cpus')} cores perf_analyzer competes with the server; with the client on "
            f"another machine the server's CPU would allow at most "
            f"{summary['cpu_bound_texts_per_s_client_elsewhere']:.0f} texts/s (an estimate from CPU time, not "
            f"measured; `--client_cpus` measures it where there are spare CPUs).")


def _p99(rounds: list[Measured], batch_size: int, concurrency: int) -> float | None:
    values = [p.p99_ms for m in rounds for p in m.points if (p.batch_size, p.concurrency) == (batch_size, concurrency)]
    return statistics.median(values) if values else None


def _accuracy(outcome: TuneOutcome) -> list[str]:
    a = outcome.accuracy
    if a is None:
        return ["INT8: not tried (the texts carry no labels of this model, so its accuracy cannot be checked).", ""]
    tried = a["drop_points"] <= outcome.config.accuracy_floor
    name = a.get("metric", "accuracy")  # macro_f1 for a multi-label or hierarchical export
    agreement = (f" INT8 gives FP32's whole label set on {a['int8_label_set_agreement']:.2f}% of the texts."
                 if "int8_label_set_agreement" in a else "")
    return ["## INT8", "", f"| precision | {name} (in-process, same texts) |", "| --- | --- |",
            f"| FP32 | {a[f'fp32_{name}']:.2f}% |", f"| INT8 | {a[f'int8_{name}']:.2f}% |", "",
            f"Drop {a['drop_points']:.2f} points on {a['texts']} labelled texts; floor {outcome.config.accuracy_floor:g}: "
            f"INT8 {'was a candidate' if tried else 'was not tried'}.{agreement}", ""]


def _candidates(outcome: TuneOutcome) -> list[str]:
    budget = outcome.config.latency_budget_ms
    lines = ["## Every candidate (in the order measured)", "",
             "| # | candidate | stage | texts/s within budget | at concurrency | p99 ms there | texts per execution | "
             "seconds | note |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    best = outcome.result.best
    for i, m in enumerate(outcome.result.measured, 1):
        point = m.best_within(budget)
        note = m.error or ("**chosen**" if best is not None and m is best else "")
        lines.append(f"| {i} | {m.candidate.name} | {m.stage} | {_f(m.score(budget))} | "
                     f"{point.concurrency if point else '-'} | {_f(point.p99_ms if point else None)} | "
                     f"{_f(point.texts_per_execution if point else None)} | {m.seconds:.0f} | {note} |")
    return lines + [""]


# ---------------------------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------------------------


def write_plot(outcome: TuneOutcome, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plot")
        return None
    fig, ax = plt.subplots(figsize=(9, 6))
    best = outcome.result.best
    everything = []
    for m in outcome.result.measured:
        pts = sorted(m.workload(), key=lambda p: p.concurrency)
        if not pts:
            continue
        everything += [(p.p99_ms, p.texts_per_s) for p in pts]
        chosen = best is not None and m is best
        style = {"linewidth": 2.5, "color": "tab:red"} if chosen else {"linewidth": 0.8, "alpha": 0.6}
        if m.candidate.name == "default":
            style = {"linewidth": 2.0, "color": "black"}
        ax.plot([p.p99_ms for p in pts], [p.texts_per_s for p in pts], marker="o", markersize=3,
                label=m.candidate.name if chosen or m.candidate.name == "default" or len(outcome.result.measured) <= 12
                else None, **style)
    front = pareto_front(everything)
    if front:
        ax.plot([p[0] for p in front], [p[1] for p in front], linestyle="--", color="tab:green", label="Pareto front")
    ax.axvline(outcome.config.latency_budget_ms, color="tab:orange", linestyle=":", label="p99 budget")
    ax.set_xscale("log")
    ax.set_xlabel("p99 latency (ms, log)")
    ax.set_ylabel(f"texts/s ({outcome.config.workload})")
    ax.set_title(f"tune: every candidate, {outcome.machine['usable_cpus']} usable cores")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
