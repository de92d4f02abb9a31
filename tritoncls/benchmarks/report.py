"""The benchmark report: targets from one run's measurements, ``report.json``, ``report.md`` and plots.

Everything here reads the ``measurements`` dict that :func:`tritoncls.benchmarks.bench.run_bench`
gathers (and that ``report.json`` stores), so the report can be rebuilt from a saved run and the
targets can be tested on a fake one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass(frozen=True)
class Target:
    """One of the speed targets (docs/benchmarks.md, "Targets"): ``met`` is ``measured >= threshold`` (or ``<=`` where lower is better)."""

    name: str
    description: str
    measured: float | None
    threshold: float
    direction: str  # ">=" or "<="
    unit: str
    detail: str

    @property
    def met(self) -> bool:
        if self.measured is None:
            return False
        return self.measured >= self.threshold if self.direction == ">=" else self.measured <= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"met": self.met}


# ---------------------------------------------------------------------------------------------
# Looking things up in the measurements
# ---------------------------------------------------------------------------------------------


def _shape(m: dict[str, Any], shape: str) -> dict[str, Any]:
    return m.get("shapes", {}).get(shape, {})


def inprocess_rate(m: dict[str, Any], shape: str, order: str, runtime: str = "onnxruntime",
                   precision: str = "fp32") -> float | None:
    for item in _shape(m, shape).get("inprocess", []):
        if item["runtime"] == runtime and item["order"] == order and item["precision"] == precision:
            return float(item["texts_per_s"])
    return None


def served_points(m: dict[str, Any], shape: str, config: str, target: str = "ensemble",
                  batch_size: int | None = None) -> list[dict[str, Any]]:
    served = _shape(m, shape).get("served", {}).get(config, {})
    return [p for p in served.get("points", [])
            if p["target"] == target and (batch_size is None or p["batch_size"] == batch_size)]


def best_point(points: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    points = list(points)
    return max(points, key=lambda p: p["inferences_per_s"]) if points else None


def _point_at(m: dict[str, Any], shape: str, config: str, batch_size: int, concurrency: int) -> dict[str, Any] | None:
    points = [p for p in served_points(m, shape, config, "ensemble", batch_size) if p["concurrency"] == concurrency]
    return best_point(points)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _rate(point: dict[str, Any] | None) -> float | None:
    return float(point["inferences_per_s"]) if point else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------


def _target_ensemble_b32(m: dict[str, Any], shape: str) -> Target:
    best = best_point(served_points(m, shape, "default", "ensemble", 32))
    inproc = inprocess_rate(m, shape, "file")
    ratio = _ratio(_rate(best), inproc)
    where = f" (concurrency {best['concurrency']})" if best else ""
    detail = (f"{shape}: ensemble at 32 texts/request {_fmt(_rate(best))} texts/s{where} vs in-process ONNX Runtime, file order, "
              f"batch 32: {_fmt(inproc)} texts/s")
    return Target(f"ensemble_b32_vs_inprocess_ort[{shape}]", "Triton ensemble, 32 texts per request, vs in-process "
                  "ONNX Runtime on the same model and texts", ratio, 0.95, ">=", "ratio", detail)


def _target_single_text(m: dict[str, Any], shape: str) -> Target:
    point = _point_at(m, shape, "default", 1, 32)
    inproc = inprocess_rate(m, shape, "sorted")
    ratio = _ratio(_rate(point), inproc)
    per_run = point["stages"]["texts_per_model_execution"] if point else None
    detail = (f"{shape}: single-text requests at concurrency 32 {_fmt(_rate(point))} texts/s "
              f"({_fmt(per_run)} texts per model execution) vs in-process ONNX Runtime, length-sorted, batch 32: "
              f"{_fmt(inproc)} texts/s")
    return Target(f"single_text_c32_vs_inprocess_sorted[{shape}]", "Single-text requests at concurrency 32 vs "
                  "in-process length-sorted batch-32 ONNX Runtime", ratio, 0.85, ">=", "ratio", detail)


def _target_reference(m: dict[str, Any], shape: str, config: str, threshold: float, label: str) -> Target:
    ours = best_point(served_points(m, shape, config, "ensemble", 32))
    ref = best_point(served_points(m, shape, "reference", "ensemble", 32))
    ratio = _ratio(_rate(ours), _rate(ref))
    detail = (f"{shape}: {label} ensemble {_fmt(_rate(ours))} texts/s vs reference-style (pad to max_seq_length, "
              f"PaddleNLP tokenizer, no dynamic batching, FP32) {_fmt(_rate(ref))} texts/s, both at 32 texts per "
              f"request, best concurrency")
    return Target(f"vs_reference_{config}[{shape}]", f"Throughput vs the reference-style deployment, {label}",
                  ratio, threshold, ">=", "ratio", detail)


def _target_metrics_cost(m: dict[str, Any], shape: str) -> Target:
    """Served metrics on vs off at 32 texts per request: the sum of both on runs' best rates over both off runs'."""
    on = [_rate(best_point(served_points(m, shape, c, "ensemble", 32))) for c in ("metrics_on", "metrics_on_2")]
    off = [_rate(best_point(served_points(m, shape, c, "ensemble", 32))) for c in ("metrics_off", "metrics_off_2")]
    ratio = _ratio(sum(on), sum(off)) if None not in on + off else None
    detail = (f"{shape}: metrics on {' / '.join(_fmt(r) for r in on)} texts/s vs off {' / '.join(_fmt(r) for r in off)} "
              f"texts/s (on, off, off, on, measured back to back; 32 texts per request, best concurrency)")
    return Target(f"metrics_on_vs_off_b32[{shape}]", "Served metrics cost at most 2% of throughput at 32 texts per "
                  "request", ratio, 0.98, ">=", "ratio", detail)


def _target_int8_accuracy(m: dict[str, Any]) -> Target:
    """INT8 vs FP32 on the trained export's dev texts: accuracy, or for a multi-label export its metric (macro-F1)."""
    acc = m.get("accuracy", {})
    fp32, int8 = acc.get("fp32"), acc.get("int8")
    drop = (fp32 - int8) * 100 if fp32 is not None and int8 is not None else None
    measure = acc.get("metric", "accuracy")
    what = (f"dev {measure} of the trained {acc['task']} export" if "task" in acc
            else "dev accuracy of the KUAKE-trained export")
    detail = (f"{what} ({acc.get('texts', 'n/a')} texts): FP32 {_fmt(fp32 and fp32 * 100, 2)}%, "
              f"INT8 {_fmt(int8 and int8 * 100, 2)}%")
    if fp32 is None:
        detail = acc.get("note", "not measured: the --input file has no labels matching the export's")
    return Target("int8_accuracy_drop", f"INT8 dev {measure} within 1 point of FP32", drop, 1.0, "<=", "points",
                  detail)


def _target_tokenizer_share(m: dict[str, Any], shape: str) -> Target:
    points = served_points(m, shape, "default", "ensemble", 32)
    best = best_point(points)
    share = best["stages"]["shares"]["tokenizer"] if best else None
    detail = (f"{shape}: tokenizer step's share of the mean request time inside the server at 32 texts per request "
              f"(concurrency {best['concurrency'] if best else 'n/a'}), from Triton's statistics")
    cpu = (best or {}).get("server_cpu_shares", {}).get("tokenizer")
    if cpu is not None:
        detail += f"; its share of the server's CPU time there: {cpu:.1%}"
    lone = min(points, key=lambda p: p["concurrency"]) if points else None
    if lone is not None and lone is not best and "tokenizer" in lone.get("stages", {}).get("shares", {}):
        detail += (f"; at concurrency {lone['concurrency']} (no other request's model step beside it on the cores): "
                   f"{lone['stages']['shares']['tokenizer']:.1%} of the request time")
    return Target(f"tokenizer_share_b32[{shape}]", "Tokenizer step <= 5% of end-to-end time at 32 texts per request",
                  share, 0.05, "<=", "share", detail)


def gemm_limit(m: dict[str, Any], precision: str) -> dict[str, Any]:
    """One precision of the run's machine limits (``gemm_limits``, see :func:`tritoncls.measure.machine.gemm_limits`).

    A run saved before the limits existed has only its numpy and ONNX Runtime SGEMM rates: they become its FP32
    limit (no peak, no INT8)."""
    limits = m.get("gemm_limits") or {}
    if limits:
        return limits.get(precision) or {}
    measured = []
    for key, library in (("sgemm", "numpy "), ("sgemm_onnxruntime", "")):
        old = m.get(key) or {}
        if old.get("gflops"):
            measured.append({"kernel": f"{library}{old.get('blas', '')}".strip() or key, "precision": "fp32",
                             "size": old.get("size", 2048), "seconds": old.get("seconds"), "threads": old.get("threads"),
                             "gops_per_s": old["gflops"]})
    if precision != "fp32" or not measured:
        return {}
    return {"precision": "fp32", "unit": "GFLOP/s", "measured": measured,
            "best": max(measured, key=lambda r: r["gops_per_s"]), "peak": None, "failures": []}


def _best_rate(m: dict[str, Any], precision: str) -> tuple[float | None, dict[str, Any]]:
    best = gemm_limit(m, precision).get("best") or {}
    return best.get("gops_per_s"), best


def _useful_g(rate: float | None, per_text: float | None) -> float | None:
    """Useful G(FL)OP/s of serving ``rate`` texts/s of ``per_text`` useful FLOPs each."""
    return rate * per_text / 1e9 if rate and per_text else None


def _target_flops(m: dict[str, Any], shape: str) -> Target:
    point = _point_at(m, shape, "default", 1, 32)
    per_text = _shape(m, shape).get("useful_flops_per_text")
    useful = _useful_g(_rate(point), per_text)
    limit, best = _best_rate(m, "fp32")
    peak = (gemm_limit(m, "fp32").get("peak") or {}).get("gops_per_s")
    detail = (f"{shape}: served single-text requests at concurrency 32 do {_fmt(useful)} useful GFLOP/s (real tokens "
              f"only, {_fmt(per_text and per_text / 1e9, 3)} GFLOP per text) vs the best FP32 GEMM measured in the same "
              f"run, {best.get('kernel', 'none measured')} {best.get('size', '?')}^3: {_fmt(limit)} GFLOP/s"
              + (f" (theoretical peak {_fmt(peak)} GFLOP/s, assumed: ratio {_fmt(_ratio(useful, peak), 2)})" if peak else "")
              + "; report.md's 'Machine limits' shows where the rest goes")
    return Target(f"useful_flops_vs_best_fp32_gemm[{shape}]", "Served useful FLOP/s, single texts at concurrency 32, "
                  "vs the best FP32 GEMM measured on the machine", _ratio(useful, limit), 0.75, ">=", "ratio", detail)


def flops_breakdown(m: dict[str, Any], shape: str) -> dict[str, Any] | None:
    """Where the time per text goes at the useful-FLOP/s target's point (served single texts, concurrency 32),
    against the best FP32 GEMM: the wall time per text (1 / throughput), the useful FLOPs' time at the limit,
    each step's compute per text (Triton's per-execution statistics) and what no step's compute covers; None
    where the point, the FLOPs or the limit is missing."""
    point = _point_at(m, shape, "default", 1, 32)
    per_text = _shape(m, shape).get("useful_flops_per_text")
    limit, best = _best_rate(m, "fp32")
    if not (point and per_text and limit and point.get("inferences_per_s")):
        return None
    stages = point.get("stages", {})
    steps = {k: v for k, v in (stages.get("us_per_text") or {}).items() if v}
    model = steps.get("model")
    ideal = 1e6 * per_text / (limit * 1e9)
    wall = 1e6 / point["inferences_per_s"]
    return {"shape": shape, "texts_per_s": point["inferences_per_s"], "limit_kernel": best.get("kernel"),
            "limit_gops_per_s": limit, "useful_flops_per_text": per_text, "wall_us_per_text": wall,
            "at_limit_us_per_text": ideal, "steps_us_per_text": steps,
            "outside_steps_us_per_text": wall - sum(steps.values()) if steps else None,
            "model_step_useful_gflops": per_text / model / 1e3 if model else None,
            "model_step_vs_limit": ideal / model if model else None,
            "request_shares": stages.get("shares", {}),
            "texts_per_model_execution": stages.get("texts_per_model_execution"),
            "op_profile": _shape(m, shape).get("op_profile")}


def useful_rates(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Useful G(FL)OP/s of each shape's served and in-process runs against the limit of their precision: FP32
    runs against the best FP32 GEMM, INT8 ones (the served ``int8`` repository, in-process INT8) against the
    best INT8 GEMM, counting the same multiply-adds as operations (the INT8 graph keeps the attention products,
    Q·Kᵀ and weights x V, in FP32). Informative: the one target is :func:`_target_flops`."""
    rows = []
    for shape, data in m.get("shapes", {}).items():
        per_text = data.get("useful_flops_per_text")
        runs = []
        for config, precision in (("default", "fp32"), ("int8", "int8")):
            runs.append((f"served {config}, 32 texts/request, best concurrency", precision,
                         _rate(best_point(served_points(m, shape, config, "ensemble", 32)))))
            runs.append((f"served {config}, single texts, concurrency 32", precision, _rate(_point_at(m, shape, config, 1, 32))))
        runs.append(("in-process ONNX Runtime FP32, sorted, batch 32", "fp32", inprocess_rate(m, shape, "sorted")))
        runs.append(("in-process INT8, sorted, batch 32", "int8", (data.get("int8") or {}).get("texts_per_s")))
        for what, precision, rate in runs:
            useful = _useful_g(rate, per_text)
            if useful is None:
                continue
            limit, best = _best_rate(m, precision)
            rows.append({"shape": shape, "run": what, "precision": precision, "texts_per_s": rate,
                         "useful_gops_per_s": useful, "limit_gops_per_s": limit, "limit_kernel": best.get("kernel"),
                         "vs_limit": _ratio(useful, limit)})
    return rows


def step_compute(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Each step's share of the server's compute time (tokenizer, model, postprocess; queue excluded) and its
    compute per text, for every shape's served ensemble-layout repositories: at 32 texts a request (the best
    point) and for single texts (the highest concurrency). Where the multi-label postprocess costs, it shows."""
    rows = []
    for shape, data in m.get("shapes", {}).items():
        for config, served in data.get("served", {}).items():
            points = [p for p in served.get("points", []) if p["target"] == "ensemble"
                      and "compute_shares" in p.get("stages", {})]
            single = [p for p in points if p["batch_size"] == 1]
            picked = [("32 texts/request", best_point(p for p in points if p["batch_size"] == 32)),
                      ("1 text/request", max(single, key=lambda p: p["concurrency"]) if single else None)]
            for request, point in picked:
                if point is None:
                    continue
                stages = point["stages"]
                rows.append({"shape": shape, "repository": config, "task": data.get("task", "multi_class"),
                             "request": request, "concurrency": point["concurrency"],
                             "compute_shares": stages["compute_shares"], "us_per_text": stages["us_per_text"],
                             "server_shares": stages["shares"], "cpu_shares": point.get("server_cpu_shares", {})})
    return rows


def step_compute_lines(rows: list[dict[str, Any]]) -> list[str]:
    """:func:`step_compute` as a markdown table."""
    lines = ["| shape | repository | task | request | concurrency | tokenizer | model | postprocess | "
             "postprocess us/text | postprocess share of request time (queue included) | server CPU: tokenizer / "
             "model / postprocess / front end |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        c, cpu = r["compute_shares"], r.get("cpu_shares") or {}
        cpu_cell = " / ".join(f"{cpu[k]:.1%}" if k in cpu else "n/a"
                              for k in ("tokenizer", "model", "postprocess", "tritonserver")) if cpu else "n/a"
        lines.append(f"| {r['shape']} | {r['repository']} | {r['task']} | {r['request']} | {r['concurrency']} | "
                     f"{c['tokenizer']:.1%} | {c['model']:.1%} | {c['postprocess']:.1%} | "
                     f"{r['us_per_text']['postprocess']:.0f} | {r['server_shares']['postprocess']:.1%} | {cpu_cell} |")
    return lines


def _pick(m: dict[str, Any], wanted: str) -> str:
    """``wanted`` if the run measured that shape, else the first shape it measured."""
    shapes = list(m.get("shapes", {}))
    return wanted if wanted in shapes else (shapes[0] if shapes else wanted)


def compute_targets(m: dict[str, Any]) -> list[Target]:
    """The speed targets (docs/benchmarks.md, "Targets"), one entry each (target 1 for medium and nano), from one run's measurements."""
    medium, nano = _pick(m, "medium"), _pick(m, "nano")
    ref_shape = m.get("reference_shape") or medium
    builders: list[Callable[[], Target]] = [
        lambda: _target_ensemble_b32(m, medium),
        lambda: _target_ensemble_b32(m, nano),
        lambda: _target_single_text(m, medium),
        lambda: _target_reference(m, ref_shape, "default", 3.0, "FP32"),
        lambda: _target_reference(m, ref_shape, "int8", 5.0, "INT8"),
        lambda: _target_int8_accuracy(m),
        lambda: _target_tokenizer_share(m, nano),
        lambda: _target_flops(m, medium),
        *([lambda: _target_metrics_cost(m, nano)] if "metrics_on" in _shape(m, nano).get("served", {}) else []),
    ]
    targets = [build() for build in builders]
    seen: set[str] = set()
    return [t for t in targets if not (t.name in seen or seen.add(t.name))]


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def write_report(m: dict[str, Any], output: Path, plots: bool = True) -> dict[str, Any]:
    """Write report.json, report.md and the plots into ``output``; returns the report dict."""
    output.mkdir(parents=True, exist_ok=True)
    report = dict(m)
    report["targets"] = [t.to_dict() for t in compute_targets(m)]
    report["step_compute"] = step_compute(m)
    report["useful_rates"] = useful_rates(m)
    report["flops_breakdown"] = flops_breakdown(m, _pick(m, "medium"))
    report["plots"] = write_plots(m, output) if plots else []
    (output / REPORT_JSON).write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n",
                                      encoding="utf-8")
    (output / REPORT_MD).write_text(render_markdown(report), encoding="utf-8")
    return report


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | measured | threshold | met | detail |", "| --- | --- | --- | --- | --- |"]
    for t in targets:
        measured = "n/a" if t["measured"] is None else (f"{t['measured']:.3f}" if t["unit"] != "points" else f"{t['measured']:.2f}")
        lines.append(f"| {t['name']} | {measured} | {t['direction']} {t['threshold']:g} | "
                     f"{'yes' if t['met'] else '**no**'} | {t['detail']} |")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    out = [f"# tritoncls benchmark report ({report.get('mode', 'full')})", ""]
    machine = report.get("machine", {})
    fp32, fp32_best = _best_rate(report, "fp32")
    int8, int8_best = _best_rate(report, "int8")
    out += [f"Run {report.get('started', '')}, {report.get('duration_s', 0):.0f} s. Data: "
            f"`{report.get('data', {}).get('path', '')}`, {report.get('data', {}).get('texts', 0)} texts "
            f"(mean {report.get('data', {}).get('mean_tokens', 0):.1f} tokens).", "",
            f"Machine: {machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} logical cores "
            f"({', '.join(machine.get('cpu_flags', []))}), {machine.get('memory_gib', '?')} GiB; load average "
            f"{_fmt(machine.get('load_average_1m'), 2)} at start. Best FP32 GEMM: **{_fmt(fp32)} GFLOP/s** "
            f"({fp32_best.get('kernel', 'none measured')}); best INT8 GEMM: **{_fmt(int8)} GOP/s** "
            f"({int8_best.get('kernel', 'none measured')}); every kernel and the peaks under 'Machine limits'.", ""]
    if report.get("notes"):
        out += ["Notes:", *[f"- {note}" for note in report["notes"]], ""]
    out += ["## Targets", "", *targets_table(report.get("targets", [])), ""]
    out += _limits_section(report)
    out += _step_compute_section(report)
    for shape, data in report.get("shapes", {}).items():
        out += _shape_section(shape, data)
    out += _served_check_section(report)
    out += _accuracy_section(report)
    out += _settings_section(report)
    out += ["## Versions", "", "| package | version |", "| --- | --- |"]
    out += [f"| {k} | {v} |" for k, v in machine.get("versions", {}).items()]
    out += [""]
    if report.get("plots"):
        out += ["## Plots", "", *[f"![{Path(p).stem}]({Path(p).name})" for p in report["plots"]], ""]
    return "\n".join(out)


def _shape_section(shape: str, data: dict[str, Any]) -> list[str]:
    arch = data.get("architecture", {})
    out = [f"## Shape `{shape}`", "",
           f"{arch.get('num_hidden_layers')} layers, hidden {arch.get('hidden_size')}, FFN {arch.get('intermediate_size')}, "
           f"{arch.get('num_attention_heads')} heads; max_seq_length {data.get('max_seq_length')}; "
           f"{_fmt((data.get('useful_flops_per_text') or 0) / 1e9, 3)} useful GFLOP per text on average over "
           f"{data.get('texts', 'the')} texts (mean {_fmt(data.get('mean_tokens'))} tokens). "
           f"Export: `{data.get('export', '')}`.", ""]
    if data.get("inprocess"):
        out += ["In-process (batch 32, dynamic padding; tokenization included):", "",
                "| runtime | precision | order | texts/s | padded/real tokens |", "| --- | --- | --- | --- | --- |"]
        out += [f"| {r['runtime']} | {r['precision']} | {r['order']} | {r['texts_per_s']:.1f} | {r['padding_ratio']:.2f} |"
                for r in data["inprocess"]]
        out += [""]
    for item in data.get("skipped", []):
        out += [f"- skipped: {item}"]
    for name, served in data.get("served", {}).items():
        cfg = served.get("build_config", {})
        out += [f"Served `{name}` (profile {cfg.get('profile')}, padding {cfg.get('padding') or 'profile default'}, "
                f"tokenizer {cfg.get('tokenizer') or 'profile default'}, {cfg.get('instances')} model instance(s), "
                f"intra-op threads {cfg.get('intra_op_threads')}"
                f"{'; model step computes every padded position (no trim)' if served.get('full_width') else ''}; "
                f"startup {served.get('startup_s', 0):.1f} s):", "",
                "| target | batch | concurrency | texts/s | p50 ms | p95 ms | p99 ms | tokenizer | model | postprocess | queue | texts/model run |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for p in served.get("points", []):
            s = p["stages"]["shares"]
            mark = "" if p.get("stable", True) else "*"
            out.append(f"| {p['target']} | {p['batch_size']} | {p['concurrency']} | {p['inferences_per_s']:.1f}{mark} | "
                       f"{p['p50_us'] / 1e3:.1f} | {p['p95_us'] / 1e3:.1f} | {p['p99_us'] / 1e3:.1f} | "
                       f"{s['tokenizer']:.1%} | {s['model']:.1%} | {s['postprocess']:.1%} | {s['queue']:.1%} | "
                       f"{p['stages']['texts_per_model_execution']:.1f} |")
        if any(not p.get("stable", True) for p in served.get("points", [])):
            out += ["", "\\* did not stabilize within perf_analyzer's stability limit (other load on the machine); "
                        "measured without it."]
        if served.get("memory"):
            mem = ", ".join(f"{x['role']} {x['rss_mib']:.0f} MiB" for x in served["memory"])
            out += ["", f"Server RSS per process: {mem}."]
        for err in served.get("errors", []):
            out += ["", f"- error: {err.splitlines()[0]}"]
        out += [""]
    if data.get("fusion"):
        f = data["fusion"]
        out += [f"ORT transformer fusions: {f.get('fused_operators')}; label agreement with FP32 "
                f"{_fmt(f.get('label_agreement', 0) * 100, 2)}%, max |logit diff| {f.get('max_abs_diff', 0):.2e}; "
                f"sorted batch-32 speed {_fmt(f.get('texts_per_s'))} vs {_fmt(f.get('baseline_texts_per_s'))} texts/s "
                f"(x{_fmt(f.get('speedup'), 2)}).", ""]
    if data.get("int8"):
        q = data["int8"]
        out += [f"INT8 dynamic quantization in-process (sorted, batch 32): {_fmt(q.get('texts_per_s'))} vs FP32 "
                f"{_fmt(q.get('baseline_texts_per_s'))} texts/s (x{_fmt(q.get('speedup'), 2)}); label agreement with FP32 "
                f"{_fmt(q.get('label_agreement', 0) * 100, 2)}%.", ""]
    return out


def limits_lines(m: dict[str, Any]) -> list[str]:
    """The machine's limits as a markdown table: each kernel measured, the best of each precision, the peak."""
    lines = ["| precision | kernel | size | threads | rate | |", "| --- | --- | --- | --- | --- | --- |"]
    for precision in ("fp32", "int8"):
        limit = gemm_limit(m, precision)
        unit = limit.get("unit", "GFLOP/s" if precision == "fp32" else "GOP/s")
        best = limit.get("best") or {}
        for rate in limit.get("measured", []):
            mark = "**best: the limit**" if rate == best else ""
            lines.append(f"| {precision} | {rate['kernel']} | {rate['size']}^3 | {rate.get('threads') or '?'} | "
                         f"{_fmt(rate['gops_per_s'])} {unit} | {mark} |")
        peak = limit.get("peak")
        if peak:
            factors = (f"{peak['cores']} cores x {_fmt(peak['clock_ghz'], 2)} GHz x "
                       f"{peak['ops_per_cycle_per_core'] or '?'} ops/cycle")
            lines.append(f"| {precision} | theoretical peak (assumed): {factors} | | | {_fmt(peak['gops_per_s'])} {unit} | "
                         f"{peak['assumption']} |")
        lines += [f"| {precision} | failed: {failure} | | | | |" for failure in limit.get("failures", [])]
    return lines


def flops_breakdown_lines(breakdown: dict[str, Any] | None) -> list[str]:
    """:func:`flops_breakdown` as a table and a sentence; empty where there is none."""
    if not breakdown:
        return []
    b, wall = breakdown, breakdown["wall_us_per_text"]
    names = {"model": "model step compute", "tokenizer": "tokenizer step compute",
             "postprocess": "postprocess step compute"}
    lines = [f"Served `{b['shape']}`, single texts at concurrency 32: {_fmt(b['texts_per_s'])} texts/s "
             f"({_fmt(b.get('texts_per_model_execution'))} texts per model execution), "
             f"{_fmt(b['useful_flops_per_text'] / 1e9, 3)} useful GFLOP per text; the limit: {b['limit_kernel']}, "
             f"{_fmt(b['limit_gops_per_s'])} GFLOP/s.", "",
             "| per text | us | share of the wall time per text |", "| --- | --- | --- |",
             f"| wall time (1 / throughput) | {wall:.0f} | 100% |",
             f"| the useful FLOPs at the limit (the target's ratio) | {b['at_limit_us_per_text']:.0f} | "
             f"{b['at_limit_us_per_text'] / wall:.1%} |"]
    for step, us in b["steps_us_per_text"].items():
        lines.append(f"| {names.get(step, step)} | {us:.0f} | {us / wall:.1%} |")
    if b.get("outside_steps_us_per_text") is not None:
        rest = b["outside_steps_us_per_text"]
        lines.append(f"| in no step's compute: waits for a batch, gRPC, ensemble scheduling (negative: steps "
                     f"overlapping on the cores) | {rest:.0f} | {rest / wall:.1%} |")
    lines.append("")
    if b.get("model_step_vs_limit") is not None:
        lines.append(f"The model step alone computes {_fmt(b['model_step_useful_gflops'])} useful GFLOP/s, "
                     f"{b['model_step_vs_limit']:.2f} of the limit. The tokenizer and postprocess steps run beside "
                     "it on the same cores." + ("" if b.get("op_profile") else " Where the rest of the model step "
                     "goes (padding, the operators that are not products, small products) was not profiled."))
    shares = b.get("request_shares") or {}
    if shares:
        lines.append("Mean request time inside the server (per-request statistics, queue included): "
                     + ", ".join(f"{stage} {share:.1%}" for stage, share in shares.items()) + ".")
    return lines + [""] + op_profile_lines(b.get("op_profile"), b["limit_gops_per_s"])


def op_profile_lines(profile: dict[str, Any] | None, limit: float | None) -> list[str]:
    """Where the model step's time goes by operator (:mod:`tritoncls.measure.op_profile`), as a table and the
    facts that explain the gap to the limit; empty where there is no profile."""
    if not profile or not profile.get("kinds"):
        return []
    total = profile["total_us"]
    lines = [f"Inside the model step: ONNX Runtime's profiler, in-process, the bench texts sorted by length in "
             f"{profile['batches']} batches of {profile['batch_size']} (the served point's texts per model "
             f"execution), {profile['threads']} intra-op threads; {total / 1e3:.0f} ms in all.", "",
             "| operators | share of the model's time | ms | nodes run | G(FL)OP/s executed | vs the limit |",
             "| --- | --- | --- | --- | --- | --- |"]
    for kind in profile["kinds"]:
        rate = kind.get("gflops_per_s")
        lines.append(f"| {kind['kind']} | {kind['share']:.1%} | {kind['us'] / 1e3:.1f} | {kind['nodes']} | "
                     f"{_fmt(rate)} | {_fmt(_ratio(rate, limit), 2) if rate else ''} |")
    lines.append("")
    padding = profile.get("padding_flops_share")
    if padding is not None:
        lines.append(f"Padding: {padding:.1%} of the FLOPs the products execute fall on padded positions "
                     f"({profile['executed_product_flops'] / 1e9:.1f} executed vs {profile['useful_flops'] / 1e9:.1f} "
                     f"useful GFLOP).")
    measured = [p for p in profile.get("product_limits", []) if p.get("gflops_per_s")]
    if measured:
        lines.append("The model's weight products measured alone at its own sizes (rows x inner x columns, ONNX "
                     "Runtime MatMul with constant weights): " + "; ".join(
                         f"{'x'.join(map(str, p['size']))}: {_fmt(p['gflops_per_s'])} GFLOP/s "
                         f"({_fmt(_ratio(p['gflops_per_s'], limit), 2)} of the limit)" for p in measured) + ".")
    return lines + [""]


def useful_rates_lines(rows: list[dict[str, Any]]) -> list[str]:
    """:func:`useful_rates` as a markdown table."""
    lines = ["| shape | run | precision | texts/s | useful G(FL)OP/s | limit | vs limit |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['shape']} | {r['run']} | {r['precision']} | {_fmt(r['texts_per_s'])} | "
              f"{_fmt(r['useful_gops_per_s'])} | {_fmt(r['limit_gops_per_s'])} | {_fmt(r['vs_limit'], 2)} |" for r in rows]
    return lines


def _limits_section(report: dict[str, Any]) -> list[str]:
    limits = report.get("gemm_limits") or {}
    load = limits.get("load_average_1m")
    out = ["## Machine limits", "",
           "Each precision's limit is the best GEMM measured in this run (best of 5 after a warm-up); the peaks are "
           "arithmetic from the CPU's flags, cores and clock, with their assumptions"
           + (f". Load average {load:.2f} when measured." if load is not None else "."), "", *limits_lines(report), ""]
    out += [f"- {note}" for note in limits.get("notes", [])]
    out += [""] if limits.get("notes") else []
    rows = report.get("useful_rates") or []
    if rows:
        out += ["Useful work against the limit of its precision (INT8 runs count the same multiply-adds as "
                "operations; their attention products stay FP32):", "", *useful_rates_lines(rows), ""]
    breakdown = flops_breakdown_lines(report.get("flops_breakdown"))
    if breakdown:
        out += ["### Where the time per text goes (the useful-FLOP/s target's point)", "", *breakdown]
    return out


def _step_compute_section(report: dict[str, Any]) -> list[str]:
    rows = report.get("step_compute") or []
    if not rows:
        return []
    return ["## Server compute time by step", "",
            "Each step's share of the three steps' compute time inside the server (Triton's per-execution "
            "statistics, a dynamic batch counted once; queue excluded), and the postprocess step's compute per text, "
            "for the ensemble layout: the best point at 32 texts a request and single texts at the highest "
            "concurrency. The last column is the postprocess share of the mean request time in the server (queue "
            "included; a request in a dynamic batch waits for the whole batch).", "",
            *step_compute_lines(rows), ""]


def served_check_line(check: dict[str, Any] | None) -> str | None:
    """One sentence on the served-vs-in-process answer check, or None where the run made none."""
    if not check:
        return None
    what = "label sets" if "task" in check else "labels"
    line = (f"Served {what} agree with in-process ONNX Runtime on {check['agreement_with_inprocess']:.2%} of "
            f"{check['texts']} texts")
    if "max_probability_diff" in check:
        per_text = check["labels_per_text"]
        line += (f"; max |probability diff| over the served labels {check['max_probability_diff']:.1e}; "
                 f"{per_text['served']:.2f} labels per text served ({per_text['inprocess']:.2f} in-process)")
    scored = [(k.removeprefix("served_"), v) for k, v in check.items() if k.startswith("served_")]
    if scored:
        line += "; served " + ", ".join(f"{name} {value:.2%}" for name, value in scored)
    return line + "."


def _served_check_section(report: dict[str, Any]) -> list[str]:
    line = served_check_line(report.get("served_label_check"))
    return ["## Served vs in-process answers", "", line, ""] if line else []


def _accuracy_section(report: dict[str, Any]) -> list[str]:
    acc = report.get("accuracy")
    if not acc:
        return []
    rows = [f"| {k} | {v * 100:.2f}% |" for k, v in acc.items() if isinstance(v, float)]
    title = (f"## Dev {acc['metric']} (trained {acc['task']} export; label agreement: whole label sets)"
             if "task" in acc else "## Accuracy (KUAKE-trained export)")
    return [title, "", acc.get("note", ""), "", "| measure | value |", "| --- | --- |", *rows, ""]


def _settings_section(report: dict[str, Any]) -> list[str]:
    settings = report.get("settings")
    if not settings:
        return []
    out = ["## Thread and instance settings", "", settings.get("note", ""), "",
           "| shape | instances | intra-op threads | single-text c32 texts/s | 32/request best texts/s |",
           "| --- | --- | --- | --- | --- |"]
    for row in settings.get("rows", []):
        out.append(f"| {row['shape']} | {row['instances']} | {row['intra_op_threads']} | {_fmt(row.get('single_c32'))} | "
                   f"{_fmt(row.get('batch32_best'))} |")
    if settings.get("chosen"):
        out += ["", f"Chosen: {settings['chosen']}"]
    return out + [""]


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def write_plots(m: dict[str, Any], output: Path) -> list[str]:
    """Throughput vs latency per shape, stage shares, and ratios vs baselines; returns the PNG paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plots")
        return []
    paths = []
    for shape, data in m.get("shapes", {}).items():
        if data.get("served"):
            paths.append(_plot_latency(plt, shape, data, output))
    stage = _plot_stages(plt, m, output)
    if stage:
        paths.append(stage)
    ratios = _plot_ratios(plt, m, output)
    if ratios:
        paths.append(ratios)
    return [str(p) for p in paths]


def _plot_latency(plt, shape: str, data: dict[str, Any], output: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=False)
    for ax, (key, title) in zip(axes, (("p50_us", "p50"), ("p95_us", "p95"), ("p99_us", "p99"))):
        for name, served in data["served"].items():
            for target in ("ensemble", "model"):
                for batch in sorted({p["batch_size"] for p in served["points"] if p["target"] == target}):
                    pts = sorted((p for p in served["points"] if p["target"] == target and p["batch_size"] == batch),
                                 key=lambda p: p["concurrency"])
                    if not pts:
                        continue
                    ax.plot([p["inferences_per_s"] for p in pts], [p[key] / 1e3 for p in pts], marker="o",
                            label=f"{name} {target} b={batch}")
                    for p in pts:
                        ax.annotate(f"c{p['concurrency']}", (p["inferences_per_s"], p[key] / 1e3), fontsize=7)
        for item in data.get("inprocess", []):
            if item["runtime"] == "onnxruntime" and item["precision"] == "fp32":
                ax.axvline(item["texts_per_s"], linestyle="--", linewidth=0.8, color="grey")
        ax.set_title(f"{shape}: throughput vs {title} latency")
        ax.set_xlabel("texts/s (dashed: in-process ORT file/sorted)")
        ax.set_ylabel(f"{title} latency (ms)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = output / f"latency_{shape}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_stages(plt, m: dict[str, Any], output: Path) -> Path | None:
    bars = []
    for shape, data in m.get("shapes", {}).items():
        for name, served in data.get("served", {}).items():
            for p in served.get("points", []):
                if p["target"] == "ensemble":
                    bars.append((f"{shape}/{name}\nb{p['batch_size']} c{p['concurrency']}", p["stages"]["shares"]))
    if not bars:
        return None
    from tritoncls.measure.triton_stats import STAGES

    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(bars)), 4.5))
    bottom = [0.0] * len(bars)
    for stage in STAGES:
        values = [shares[stage] for _, shares in bars]
        ax.bar(range(len(bars)), values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(bars)), [label for label, _ in bars], fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("share of mean request time in the server")
    ax.set_title("Stage shares (Triton inference statistics)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = output / "stage_shares.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_ratios(plt, m: dict[str, Any], output: Path) -> Path | None:
    labels, values = [], []
    for shape, data in m.get("shapes", {}).items():
        for config in data.get("served", {}):
            best = best_point(served_points(m, shape, config, "ensemble"))
            if not best:
                continue
            for item in data.get("inprocess", []):
                if item["precision"] == "fp32":
                    labels.append(f"{shape} {config} best\nvs {item['runtime']} {item['order']}")
                    values.append(best["inferences_per_s"] / item["texts_per_s"])
            reference = best_point(served_points(m, shape, "reference", "ensemble", 32))
            ours = best_point(served_points(m, shape, config, "ensemble", 32))
            if reference and ours and config != "reference":
                labels.append(f"{shape} {config} b32\nvs reference b32")
                values.append(ours["inferences_per_s"] / reference["inferences_per_s"])
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(values)), 4.5))
    ax.bar(range(len(values)), values)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(values)), labels, fontsize=6, rotation=60, ha="right")
    ax.set_ylabel("served best throughput / in-process baseline")
    ax.set_title("Ratios vs in-process baselines")
    fig.tight_layout()
    path = output / "ratios.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
