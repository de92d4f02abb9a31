"""compress's outputs: compress_report.md and .json (every candidate side by side with the unpruned FP32 default
and the reference-style deployment), compress.png (served score vs texts/s: the Pareto front, the budget line,
the chosen point) and compress.json (the chosen export in build-repo's options-file format)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tritoncls.compress.config import (
    OPTIONS_FILE,
    PLOT_FILE,
    REPORT_FILE,
    REPORT_JSON,
    CandidateResult,
    CompressOutcome,
)
from tritoncls.compress.search import drop_points, pareto_front

log = logging.getLogger(__name__)

METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "micro_f1": "micro-F1"}


def write_outputs(outcome: CompressOutcome, machine: dict[str, Any]) -> dict[str, Path]:
    """Every file of a compress run into its output folder; compress.json only when a candidate was chosen."""
    from tritoncls.builder.options import write_options

    out = outcome.config.output_dir
    files = {"json": out / REPORT_JSON}
    files["json"].write_text(json.dumps(record(outcome, machine), indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")
    options = out / OPTIONS_FILE
    options.unlink(missing_ok=True)  # a stale choice must not outlive a run that chose nothing
    chosen = outcome.chosen
    if chosen is not None:
        extra = {"export": str(Path(chosen.export_dir).resolve()), "candidate": chosen.name,
                 "structure": chosen.structure, "max_seq_length": chosen.max_seq_length,
                 "served_score": chosen.score, "served_test_score": chosen.test_score, "metric": outcome.metric,
                 "max_drop": outcome.config.max_drop,
                 "written_by": "tritoncls compress"}
        files["options"] = write_options(options, chosen.build_options, machine, extra)
    if outcome.config.plots:
        plot = write_plot(outcome, out / PLOT_FILE)
        if plot is not None:
            files["plot"] = plot
    files["report"] = out / REPORT_FILE
    files["report"].write_text(render_markdown(outcome, "plot" in files), encoding="utf-8")
    return files


def ratios(result: CandidateResult, outcome: CompressOutcome) -> dict[str, float | None]:
    """Texts/s against the unpruned FP32 default and the reference-style deployment, measured in the same run."""
    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    base, ref = outcome.baseline, outcome.reference
    return {"batch_vs_default": ratio(result.batch_texts_per_s, base and base.batch_texts_per_s),
            "batch_vs_reference": ratio(result.batch_texts_per_s, ref and ref.batch_texts_per_s),
            "single_vs_default": ratio(result.single_texts_per_s, base and base.single_texts_per_s),
            "single_vs_reference": ratio(result.single_texts_per_s, ref and ref.single_texts_per_s)}


def record(outcome: CompressOutcome, machine: dict[str, Any]) -> dict[str, Any]:
    front = {r.name for r in pareto_front(outcome.results)}
    base_score = outcome.baseline.score if outcome.baseline else None
    rows = [r.to_dict() | {"ratios": ratios(r, outcome), "pareto": r.name in front,
                           "drop_points": drop_points(r, base_score) if r.ok and base_score is not None else None,
                           "test_drop_points": test_drop(r, outcome)}
            for r in outcome.results]
    return {"config": outcome.config.to_dict(), "metric": outcome.metric, "facts": outcome.facts, "machine": machine,
            "baseline": outcome.baseline.name if outcome.baseline else None,
            "reference": outcome.reference.name if outcome.reference else None,
            "chosen": outcome.chosen.name if outcome.chosen else None,
            "closest": [r.name for r in outcome.closest], "candidates": rows}


def test_drop(result: CandidateResult, outcome: CompressOutcome) -> float | None:
    """Points of served test score ``result`` loses to the unpruned FP32 default (None: either has no test score)."""
    base = outcome.baseline
    if base is None or base.test_score is None or result.test_score is None:
        return None
    return 100.0 * (base.test_score - result.test_score)


def _f(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "n/a" if value is None else f"{scale * value:.{digits}f}"


def _delta(points: float) -> str:
    return f"{round(points, 2) + 0.0:+.2f}"  # + 0.0: no "-0.00"


def render_markdown(outcome: CompressOutcome, plot: bool) -> str:
    config, metric = outcome.config, METRIC_NAMES.get(outcome.metric, outcome.metric)
    base = outcome.baseline
    b, c = config.request_texts, config.single_concurrency
    lines = ["# Compress report", "",
             f"Teacher `{outcome.facts.get('teacher')}` ({outcome.facts.get('task')}); dev `{config.dataset / config.dev_file}` "
             f"({outcome.facts.get('dev_texts')} texts scored through the served ensemble, {metric}). Budget: at most "
             f"{config.max_drop:g} points below the unpruned FP32 default's served score"
             + (f" ({_f(base.score, 2, 100)}%)." if base else "."), "",
             f"Speed: perf_analyzer on the served ensemble, {b}-text requests at concurrency {config.batch_concurrency} "
             f"and single texts at concurrency {c}; ratios are to the unpruned FP32 default repository and to the "
             f"reference-style deployment of the unpruned model (PaddleNLP's tokenizer, or the wordpiece tokenizer for a "
             f"model of Hugging Face rules; padding to max_seq_length, no dynamic batching), measured in this run.", ""]
    test_file = outcome.facts.get("test_file")
    if test_file:
        lines += [f"Test: `{test_file}` ({outcome.facts.get('test_texts')} texts) is scored through the served "
                  f"ensemble too, for every candidate; the choice uses dev only.", ""]
    if outcome.chosen is not None:
        r, chosen = ratios(outcome.chosen, outcome), outcome.chosen
        test = test_drop(chosen, outcome)
        lines += [f"**Chosen: `{chosen.name}`**: dev {_f(chosen.score, 2, 100)}% "
                  f"({_delta(-drop_points(chosen, base.score))} pts)"
                  + (f", test {_f(chosen.test_score, 2, 100)}% ({_delta(-test)} pts)" if test is not None else "")
                  + f", {_f(chosen.batch_texts_per_s)} texts/s at {b}-text requests ({_f(r['batch_vs_default'], 2)}x "
                  f"the default FP32, {_f(r['batch_vs_reference'], 2)}x reference-style). Rebuild it: `tritoncls "
                  f"build-repo --model {chosen.export_dir} --output REPO --options {config.output_dir / OPTIONS_FILE}`.",
                  ""]
    else:
        lines += ["**No candidate is within the budget.** Closest: "
                  + (", ".join(f"`{r.name}` {_f(r.score, 2, 100)}%" for r in outcome.closest) or "none measured")
                  + ".", ""]
    front = {r.name for r in pareto_front(outcome.results)}
    lines += [f"| candidate | structure | layers | width | precision | serving | length | dev {metric} (%) | Δ (pts) | "
              f"test (%) | Δ test (pts) | texts/s {b}-text | p99 {b}-text (ms) | texts/s single c{c} | "
              f"p99 single (ms) | x default ({b}) | x reference-style ({b}) | x default (single) | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in outcome.results:
        q = ratios(r, outcome)
        delta = _delta(-drop_points(r, base.score)) if base and r.ok else "n/a"
        note = ("reference-style peer" if r.peer else "chosen" if outcome.chosen and r.name == outcome.chosen.name
                else "Pareto" if r.name in front else "")
        if base is not None and r.name == base.name:
            note = (note + ", " if note else "") + "default FP32 baseline"
        if r.error:
            note = f"failed: {r.error[:120]}"
        test = test_drop(r, outcome)
        lines.append(f"| {r.name} | {r.structure} | {r.num_hidden_layers or ''} | {r.width} | {r.precision} | "
                     f"{'reference-style' if r.peer else r.serving} | {r.max_seq_length} | {_f(r.score, 2, 100)} | {delta} | {_f(r.test_score, 2, 100)} | "
                     f"{'n/a' if test is None else _delta(-test)} | {_f(r.batch_texts_per_s)} | "
                     f"{_f(r.batch_p99_ms)} | {_f(r.single_texts_per_s)} | {_f(r.single_p99_ms)} | "
                     f"{_f(q['batch_vs_default'], 2)} | {_f(q['batch_vs_reference'], 2)} | "
                     f"{_f(q['single_vs_default'], 2)} | {note} |")
    facts = outcome.facts
    if "corpus_length" in facts:
        lines += ["", f"Lengths: trained {facts['trained_length']}; p{100 * facts['length_quantile']:g} of the train "
                  f"texts' tokens rounds up to {facts['corpus_length']} (quantiles {facts.get('train_token_quantiles')})"
                  + ("; each structure is also exported at that length." if facts['corpus_length'] < facts['trained_length']
                     else "; no shorter export.")]
    if facts.get("not_distilled"):
        lines += ["", "Not distilled, so not measured (--budget_minutes ran out before they started; `--resume` with "
                  "a larger budget distils every student again): " + ", ".join(facts["not_distilled"]) + "."]
    if plot:
        lines += ["", f"![served score vs texts/s]({PLOT_FILE})"]
    return "\n".join(lines) + "\n"


def write_plot(outcome: CompressOutcome, path: Path) -> Path | None:
    """Served score vs texts/s at batched requests: every candidate, the Pareto front, the budget line, the chosen
    point, the reference-style peer."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plot")
        return None
    measured = [r for r in outcome.results if r.ok]
    if not measured:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for precision, marker in zip(dict.fromkeys(r.precision for r in measured if not r.peer), "osD^v"):
        points = [r for r in measured if r.precision == precision and not r.peer]
        ax.scatter([r.batch_texts_per_s for r in points], [100 * r.score for r in points], marker=marker,
                   label=f"{precision} candidates", alpha=0.7)
        for r in points:
            ax.annotate(r.structure + f"/L{r.max_seq_length}" + ("" if r.serving == "default" else f"/{r.serving}"),
                        (r.batch_texts_per_s, 100 * r.score), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    front = pareto_front(outcome.results)
    if front:
        ax.plot([r.batch_texts_per_s for r in front], [100 * r.score for r in front], "-", color="gray",
                label="Pareto front")
    if outcome.reference is not None:
        ax.scatter([outcome.reference.batch_texts_per_s], [100 * outcome.reference.score], marker="x", color="black",
                   label="reference-style (unpruned)")
    if outcome.baseline is not None:
        floor = 100 * outcome.baseline.score - outcome.config.max_drop
        ax.axhline(floor, linestyle="--", color="red", label=f"budget: -{outcome.config.max_drop:g} pts")
    if outcome.chosen is not None:
        ax.scatter([outcome.chosen.batch_texts_per_s], [100 * outcome.chosen.score], marker="*", s=250,
                   color="gold", edgecolors="black", label=f"chosen: {outcome.chosen.name}", zorder=5)
    ax.set_xlabel(f"texts/s at {outcome.config.request_texts}-text requests (served)")
    ax.set_ylabel(f"served dev {METRIC_NAMES.get(outcome.metric, outcome.metric)} (%)")
    ax.set_title("tritoncls compress: served score vs throughput")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
