"""Interleaved served-vs-in-process A/B of several exports on the same texts (docs/benchmarks.md, "Multi-label
exports"): where one `tritoncls bench` run per export puts minutes of other load between the exports, this
alternates them round by round, each served run right after its own in-process baseline.

Per round and export: in-process ONNX Runtime at batch 32 (file order and length-sorted, best of 2 passes), then
the export's default repository served with perf_analyzer at 32 texts a request (concurrency 1) and single texts
(concurrency 32), with Triton's statistics (each step's share of server compute, its compute per text). Prints
one line per measurement and the medians of the within-round ratios; writes every record to OUTPUT/ab.json.

    python scripts/task_ab.py --input dev.txt --output /tmp/ab --rounds 3 \\
        multi_class=/tmp/bench_work_mc/exports/nano multi_label=/tmp/bench_work_ml/exports/nano
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

POINTS = {"b32_c1": (32, 1), "b1_c32": (1, 32)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("exports", nargs="+", metavar="NAME=EXPORT_DIR", help="the exports to alternate")
    parser.add_argument("--input", required=True, help="texts, one a line (text<TAB>label lines work too)")
    parser.add_argument("--output", required=True, help="repositories, perf_analyzer files and ab.json")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max_texts", type=int, default=256)
    return parser.parse_args(argv)


def measure_round(name: str, export: Path, repo: Path, texts, rows, workdir: Path, analyzer) -> dict[str, Any]:
    from tritoncls.measure import inprocess, served
    from tritoncls.measure.served import SweepPoint

    base = {order: inprocess.run_baseline(export, texts.texts, "onnxruntime", order, repeats=2)[0].texts_per_s
            for order in ("file", "sorted")}
    sweep = [SweepPoint("ensemble", b, c) for b, c in POINTS.values()]
    result, _ = served.measure(name, repo, texts.texts, rows, sweep, workdir, analyzer, 3, 6, 25)
    points = {(p["batch_size"], p["concurrency"]): p for p in result.points}
    record: dict[str, Any] = {"export": name, "inprocess": base, "errors": result.errors}
    for label, key in POINTS.items():
        if key in points:
            stages = points[key]["stages"]
            record[label] = {"texts_per_s": points[key]["inferences_per_s"], "compute_shares": stages["compute_shares"],
                             "us_per_text": stages["us_per_text"],
                             "texts_per_model_execution": stages["texts_per_model_execution"]}
    record["b32_c1_vs_inprocess_file"] = record.get("b32_c1", {}).get("texts_per_s", 0.0) / base["file"]
    record["b1_c32_vs_inprocess_sorted"] = record.get("b1_c32", {}).get("texts_per_s", 0.0) / base["sorted"]
    return record


def summary(name: str, records: list[dict[str, Any]]) -> str:
    mine = [r for r in records if r["export"] == name and "b32_c1" in r and "b1_c32" in r]
    if not mine:
        return f"{name}: no complete round"

    def median(path: tuple[str, ...]) -> float:
        values = []
        for r in mine:
            value: Any = r
            for key in path:
                value = value[key]
            values.append(value)
        return statistics.median(values)

    return (f"{name}: 32 texts/request c1 / in-process file order {median(('b32_c1_vs_inprocess_file',)):.2f}; "
            f"single texts c32 / in-process sorted {median(('b1_c32_vs_inprocess_sorted',)):.2f}; postprocess share "
            f"of server compute {median(('b32_c1', 'compute_shares', 'postprocess')):.1%} (32/request), "
            f"{median(('b1_c32', 'compute_shares', 'postprocess')):.1%} (single); postprocess us/text "
            f"{median(('b32_c1', 'us_per_text', 'postprocess')):.0f} / {median(('b1_c32', 'us_per_text', 'postprocess')):.0f} "
            f"(medians of {len(mine)} rounds)")


def main(argv: list[str] | None = None) -> int:
    from tritoncls.measure import inprocess, served
    from tritoncls.measure.perf_analyzer import PerfAnalyzer
    from tritoncls.measure.texts import read_bench_texts

    args = parse_args(argv)
    exports = dict(item.split("=", 1) for item in args.exports)
    texts = read_bench_texts(args.input).head(args.max_texts)
    out = Path(args.output)
    analyzer = PerfAnalyzer.find()
    repos = {name: served.build(Path(export), out / name / "repo") for name, export in exports.items()}
    rows = {name: inprocess.token_rows(Path(export), texts.texts) for name, export in exports.items()}
    records = []
    for round_ in range(args.rounds):
        for name, export in exports.items():
            record = {"round": round_} | measure_round(name, Path(export), repos[name], texts, rows[name],
                                                       out / name / f"perf{round_}", analyzer)
            records.append(record)
            print(json.dumps({k: record[k] for k in ("round", "export", "b32_c1_vs_inprocess_file",
                                                     "b1_c32_vs_inprocess_sorted")}), flush=True)
    (out / "ab.json").write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    for name in exports:
        print(summary(name, records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
