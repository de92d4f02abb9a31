"""deploy --target k8s: the Prometheus rules, their promtool unit tests and the Grafana dashboard.

promtool (Debian's ``prometheus`` package; ``scripts/system_deps.sh`` installs it when run as root, as
``make test`` and CI do) checks every rendered rule file and runs its unit tests; the tests that need it
skip, saying so, where it is missing. No Prometheus, Prometheus Operator or Grafana runs here.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tests import support
from tritoncls.builder import BuildConfig, build_repository
from tritoncls.deploy import DeployConfig, deploy
from tritoncls.deploy import validate as validate_module
from tritoncls.deploy.dashboard import DASHBOARD_FILE, dashboard
from tritoncls.deploy.monitoring import _drift, share_below
from tritoncls.deploy.promql import exact_alternation, regex_escape, selector, string_literal
from tritoncls.deploy.repository import load_repository
from tritoncls.deploy.rules import RULE_FILE, RULES_DIR, TEST_FILE, RuleSet
from tritoncls.deploy.specs import Drift, LowConfidence, MonitoringSpec
from tritoncls.deploy.validate import validate_dashboard, validate_rules, validate_yaml_file
from tritoncls.errors import DeployError
from tritoncls.runtime.contract import LATENCY_SUMMARIES_ARG
from tritoncls.runtime.metrics import (
    CONFIDENCE_BOUNDS,
    REPOSITORY_REFERENCE_FILE,
    Histogram,
    Reference,
)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not found: apt-get install prometheus "
                                                              "(scripts/system_deps.sh does, run as root)")
ALERTS = {"TritonclsLabelDrift", "TritonclsLowConfidence", "TritonclsRefusedInputs", "TritonclsLatencyP99High",
          "TritonclsQueueTimeHigh"}
#: label values no label.txt can hold (one label per line), for the specs built here directly
UNWRITABLE_LABELS = ("new\nline", "tab\there", "carriage\rreturn", "bell\x07", 'both "\\', "")


def promtool(command: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, command, "rules", path.name], cwd=path.parent, capture_output=True, text=True,
                          timeout=120)


def rules_of(out: Path) -> list[dict]:
    return yaml.safe_load((out / RULES_DIR / RULE_FILE).read_text(encoding="utf-8"))["groups"][0]["rules"]


def spec_of(labels: tuple[str, ...], model: str = "seqcls", steps: tuple[str, ...] = ()) -> MonitoringSpec:
    """A spec built directly (no repository): any label values, any model names."""
    shares = tuple((label, 1 / len(labels)) for label in labels)
    shares = (*shares[:-1], (labels[-1], 1.0 - sum(share for _, share in shares[:-1])))
    return MonitoringSpec(
        name="seqcls", model=model, models=(model, *steps), metrics=True, multi_label=False,
        drift=Drift(shares=shares, reference_texts=10_000, tvd_threshold=0.2, min_texts=500),
        low_confidence=LowConfidence(expected_ratio=0.05, threshold_ratio=0.1, min_texts=200),
        refused_ratio=0.05, refused_min_requests=100, latency_quantile="0.99", latency_threshold_us=500_000,
        queue_threshold_us=100_000, reasons=())


def write_rules(spec: MonitoringSpec, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rules = RuleSet(spec)
    (folder / RULE_FILE).write_text(rules.rule_file(), encoding="utf-8")
    (folder / TEST_FILE).write_text(rules.test_file(), encoding="utf-8")
    return folder / RULE_FILE, folder / TEST_FILE


# ---------------------------------------------------------------------------------------------
# PromQL text
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "literal"), [
    ("seqcls", '"seqcls"'),
    ('say "hi"', r'"say \"hi\""'),
    ("back\\slash", r'"back\\slash"'),
    ("new\nline", r'"new\nline"'),
    ("tab\tcr\r", r'"tab\tcr\r"'),
    ("bell\x07del\x7f", r'"bell\u0007del\u007f"'),
    ("a{b} {{ $x }}", '"a{b} {{ $x }}"'),
    ("中文 🙂 it's `x`", "\"中文 🙂 it's `x`\""),
    ("", '""'),
])
def test_promql_string_literal_escapes_what_a_double_quoted_string_cannot_hold(value, literal):
    assert string_literal(value) == literal


def test_promql_regex_escapes_re2_metacharacters_and_anchoring_is_left_to_prometheus():
    assert regex_escape("seq.cls_model") == r"seq\.cls_model"
    assert regex_escape("a+b*c?(d)|[e]{f}^$\\") == r"a\+b\*c\?\(d\)\|\[e\]\{f\}\^\$\\"
    assert exact_alternation(["seq.cls", "tok"]) == r'"seq\\.cls|tok"'
    assert selector("m", {"label": 'q"'}, {"model": ["a.b"]}) == r'm{label="q\"",model=~"a\\.b"}'


@needs_promtool
def test_any_label_value_and_a_dotted_model_name_survive_the_rules_and_promtool(tmp_path):
    """Label values no label.txt can hold (newline, tab, control characters, empty) still check and pass the
    shipped unit tests; a model name's dot matches only a dot (a step named with another character is not
    counted in the queue time)."""
    spec = spec_of((*support.HOSTILE_LABELS, *UNWRITABLE_LABELS), model="seq.cls",
                   steps=("tokenizer", "seq.cls_model", "seq.cls_postprocess"))
    rule_file, test_file = write_rules(spec, tmp_path / "rules")
    assert promtool("check", rule_file).returncode == 0, promtool("check", rule_file).stdout
    result = promtool("test", test_file)
    assert result.returncode == 0, result.stdout + result.stderr
    labels = {rule["labels"]["label"] for rule in rules_of(tmp_path) if rule.get("record") == "tritoncls:label_share:reference"}
    assert labels == {*support.HOSTILE_LABELS, *UNWRITABLE_LABELS}
    impostor = tmp_path / "impostor.test.yml"
    impostor.write_text(yaml.safe_dump({"rule_files": [RULE_FILE], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": 'nv_inference_request_success{model="seq.cls"}', "values": "0+60x20"},
                         {"series": 'nv_inference_queue_duration_us{model="seqXcls_model"}', "values": "0+60000000x20"},
                         {"series": 'nv_inference_queue_duration_us{model="seq.cls_model"}', "values": "0+60x20"}],
        "promql_expr_test": [{"expr": "tritoncls:queue_time_per_request:us_rate5m", "eval_time": "20m",
                              "exp_samples": [{"labels": 'tritoncls:queue_time_per_request:us_rate5m{model="seq.cls"}',
                                               "value": 1}]}]}]}), encoding="utf-8")
    shutil.move(impostor, tmp_path / "rules" / impostor.name)
    result = promtool("test", tmp_path / "rules" / impostor.name)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# The rendered rules
# ---------------------------------------------------------------------------------------------


def test_k8s_renders_the_rules_tests_and_dashboard_and_enables_latency_summaries(hostile_k8s):
    for name in ("prometheus-rules.yaml", f"{RULES_DIR}/{RULE_FILE}", f"{RULES_DIR}/{TEST_FILE}", DASHBOARD_FILE):
        assert (hostile_k8s / name).is_file(), name
    deployment = yaml.safe_load((hostile_k8s / "deployment.yaml").read_text())
    assert LATENCY_SUMMARIES_ARG in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {r["alert"] for r in rules_of(hostile_k8s) if "alert" in r} == ALERTS
    assert json.loads((hostile_k8s / "tritoncls_deploy.json").read_text())["files"] == sorted(
        ["deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "podmonitor.yaml", "prometheus-adapter-rules.yaml",
         "prometheus-rules.yaml", f"{RULES_DIR}/{RULE_FILE}", f"{RULES_DIR}/{TEST_FILE}", DASHBOARD_FILE, "README.md"])


def test_the_reference_shares_keep_every_hostile_label_verbatim_and_sum_to_one(hostile_k8s, hostile_repo):
    reference = Reference.load(hostile_repo / REPOSITORY_REFERENCE_FILE)
    shares = {r["labels"]["label"]: float(r["expr"].removeprefix("vector(").removesuffix(")"))
              for r in rules_of(hostile_k8s) if r.get("record") == "tritoncls:label_share:reference"}
    assert list(shares) == list(reference.labels) == list(support.HOSTILE_LABELS)
    assert shares == pytest.approx({label: count / reference.texts for label, count in reference.labels.items()})
    operator = yaml.safe_load((hostile_k8s / "prometheus-rules.yaml").read_text(encoding="utf-8"))
    assert operator["spec"]["groups"] == yaml.safe_load((hostile_k8s / RULES_DIR / RULE_FILE).read_text())["groups"]


@needs_promtool
def test_promtool_checks_the_rendered_rules_and_passes_their_unit_tests(hostile_k8s):
    check = promtool("check", hostile_k8s / RULES_DIR / RULE_FILE)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    tests = promtool("test", hostile_k8s / RULES_DIR / TEST_FILE)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_stays_silent(hostile_k8s):
    document = yaml.safe_load((hostile_k8s / RULES_DIR / TEST_FILE).read_text(encoding="utf-8"))
    outcomes: dict[str, set[bool]] = {}
    for test in document["tests"]:
        for case in test["alert_rule_test"]:
            outcomes.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
        if not any(case["exp_alerts"] for case in test["alert_rule_test"]):
            assert test.get("promql_expr_test"), f"{test['name']}: silence must be checked against present data"
    assert outcomes == {alert: {True, False} for alert in ALERTS}


@needs_promtool
@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_the_shipped_tests_fail_when_an_alert_never_fires_or_always_fires(hostile_k8s, tmp_path, alert):
    """The unit tests bite: replace one alert's expression by one that never fires, then by one that always
    fires (for the served model), and promtool test rules fails each time."""
    document = yaml.safe_load((hostile_k8s / RULES_DIR / RULE_FILE).read_text(encoding="utf-8"))
    tests = yaml.safe_load((hostile_k8s / RULES_DIR / TEST_FILE).read_text(encoding="utf-8"))
    tests["tests"] = [t for t in tests["tests"] if t["alert_rule_test"][0]["alertname"] == alert]  # this alert's only
    (tmp_path / TEST_FILE).write_text(yaml.safe_dump(tests, allow_unicode=True), encoding="utf-8")
    for expr in ("vector(1) < 0", 'label_replace(vector(1), "model", "seqcls", "", "")'):
        for rule in document["groups"][0]["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
        (tmp_path / RULE_FILE).write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
        result = promtool("test", tmp_path / TEST_FILE)
        assert result.returncode != 0 and f"alertname: {alert}" in result.stdout + result.stderr, (expr, result.stdout)


def test_queue_time_rule_is_the_autoscalers_metric_over_the_deployment(hostile_k8s):
    adapter = yaml.safe_load((hostile_k8s / "prometheus-adapter-rules.yaml").read_text())["rules"]["custom"][0]
    queue = next(r for r in rules_of(hostile_k8s) if r.get("record") == "tritoncls:queue_time_per_request:us_rate5m")
    assert "nv_inference_queue_duration_us" in adapter["metricsQuery"] and 'model="seqcls"' in adapter["metricsQuery"]
    assert queue["expr"] == ('sum(rate(nv_inference_queue_duration_us{model=~"seqcls|tokenizer|seqcls_model|'
                             'seqcls_postprocess"}[5m])) / (sum(rate(nv_inference_request_success{model="seqcls"}[5m])) > 0)')
    assert queue["labels"] == {"model": "seqcls"}


# ---------------------------------------------------------------------------------------------
# Without a reference, with metrics off
# ---------------------------------------------------------------------------------------------


def test_a_repository_without_a_reference_renders_no_drift_rules_and_says_so(deploy_repos, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="tritoncls.deploy")
    out = tmp_path / "k8s"
    plan = deploy(DeployConfig(model_repository=str(deploy_repos["cpu"]), output=str(out), target="k8s"))
    rules = rules_of(out)
    assert {r["alert"] for r in rules if "alert" in r} == ALERTS - {"TritonclsLabelDrift", "TritonclsLowConfidence"}
    assert not any("label_share:reference" in r.get("record", "") or "drift" in r.get("record", "") for r in rules)
    said = f"No {REPOSITORY_REFERENCE_FILE} in the repository: the rules have no label-drift"
    assert any(said in note for note in plan.notes) and said in (out / "README.md").read_text()
    assert said in caplog.text
    tests = yaml.safe_load((out / RULES_DIR / TEST_FILE).read_text())["tests"]
    assert {case["alertname"] for test in tests for case in test["alert_rule_test"]} == ALERTS - {
        "TritonclsLabelDrift", "TritonclsLowConfidence"}
    assert "Label drift" not in (out / DASHBOARD_FILE).read_text()


def test_a_repository_with_metrics_off_gets_the_triton_rules_only(deploy_repos, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(deploy_repos["cpu"], repo)
    marker = repo / "tritoncls_build.json"
    record = json.loads(marker.read_text())
    record["metrics"] = {"enabled": False}
    marker.write_text(json.dumps(record))
    plan = deploy(DeployConfig(model_repository=str(repo), output=str(tmp_path / "k8s"), target="k8s"))
    rules = rules_of(tmp_path / "k8s")
    assert {r["alert"] for r in rules if "alert" in r} == {"TritonclsLatencyP99High", "TritonclsQueueTimeHigh"}
    assert not any("tritoncls_" in r["expr"] for r in rules)
    assert any("--no_metrics" in note for note in plan.notes)
    panels = dashboard(plan.spec.monitoring)["panels"]
    assert [p["title"] for p in panels] == ["Request duration of the ensemble", "Queue time per request",
                                            "Requests per second"]


def test_a_reference_whose_labels_are_not_the_repositorys_is_refused(deploy_repos, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(deploy_repos["cpu"], repo)
    support.write_reference(repo, {"positive": 3, "negative": 2, "sarcastic": 1})
    with pytest.raises(DeployError, match=r"tritoncls_reference.json: its labels are not the repository's.*only in "
                                          r"the reference \['sarcastic'\], only in the repository \['neutral'\]"):
        load_repository(repo)


# ---------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------


def _reference(counts: dict[str, int], low: int = 0, threshold: float = 0.5,
               confidence: tuple[int, ...] | None = None) -> Reference:
    texts = sum(counts.values())
    return Reference(source="dev.txt", texts=texts, task="multi_class", labels=counts,
                     top_confidence=Histogram(CONFIDENCE_BOUNDS, confidence or (0,) * 11 + (texts,)),
                     text_tokens=Histogram((64.0,), (texts, 0)), truncated=0, low_confidence_threshold=threshold,
                     low_confidence=low)


def test_drift_threshold_is_0_2_for_a_large_reference_raised_for_a_small_one_and_capped():
    large = _drift(_reference({f"l{i}": 1000 for i in range(10)}))
    assert large.tvd_threshold == 0.2 and large.min_texts == 500
    small = _drift(_reference({f"l{i}": 10 for i in range(10)}))
    assert 0.2 < small.tvd_threshold <= 0.45
    tiny = _drift(_reference({f"l{i}": 1 for i in range(40)}))
    assert tiny.tvd_threshold == 0.45 and tiny.min_texts == 50 * 40
    assert _drift(_reference({"only": 5})) is None


def test_expected_low_confidence_share_is_read_off_the_histogram_when_the_served_threshold_differs():
    confidence = (0, 0, 0, 10, 10, 0, 0, 0, 0, 0, 0, 80)  # 10 in (0.3, 0.4], 10 in (0.4, 0.5], 80 above 0.99
    reference = _reference({"a": 50, "b": 50}, confidence=confidence)
    assert share_below(reference, 0.4) == pytest.approx(0.1)
    assert share_below(reference, 0.45) == pytest.approx(0.15)
    assert share_below(reference, 1.0) == pytest.approx(1.0) and share_below(reference, 0.0) == 0.0


# ---------------------------------------------------------------------------------------------
# The dashboard, and validation errors
# ---------------------------------------------------------------------------------------------


def test_the_dashboard_has_a_panel_per_signal_on_a_datasource_variable(hostile_k8s):
    document = json.loads((hostile_k8s / DASHBOARD_FILE).read_text(encoding="utf-8"))
    titles = [panel["title"] for panel in document["panels"]]
    for wanted in ("Texts per second by predicted label", "Label shares, last hour", "Label drift",
                   "Low-confidence share", "Top probability per text", "Tokens per text", "Refused share of requests",
                   "Request duration of the ensemble", "Queue time per request"):
        assert any(title.startswith(wanted) for title in titles), wanted
    assert not any(title.startswith("Labels per text") for title in titles)  # multi-class reference
    assert [v["name"] for v in document["templating"]["list"]] == ["datasource"]
    targets = [target for panel in document["panels"] for target in panel["targets"]]
    assert all(target["datasource"]["uid"] == "${datasource}" for target in targets)
    assert all('model="seqcls"' in target["expr"] for target in targets)
    text = (hostile_k8s / DASHBOARD_FILE).read_text(encoding="utf-8")
    assert not any(label in text for label in ("pwned", "中文标签", "{brace}"))  # queries group by label
    validate_dashboard(hostile_k8s / DASHBOARD_FILE)


def test_a_dashboard_with_repeated_panel_ids_or_a_fixed_datasource_is_refused(hostile_k8s, tmp_path):
    document = json.loads((hostile_k8s / DASHBOARD_FILE).read_text(encoding="utf-8"))
    document["panels"][1]["id"] = document["panels"][0]["id"]
    (tmp_path / DASHBOARD_FILE).write_text(json.dumps(document))
    with pytest.raises(DeployError, match=r"grafana-dashboard.json: field panels: panel ids .* repeat"):
        validate_dashboard(tmp_path / DASHBOARD_FILE)
    document["panels"][1]["id"] = 99
    document["panels"][0]["datasource"]["uid"] = "prom-1"
    (tmp_path / DASHBOARD_FILE).write_text(json.dumps(document))
    with pytest.raises(DeployError, match=r"field panels\[0\].datasource.uid: '\$\{datasource\}' was expected"):
        validate_dashboard(tmp_path / DASHBOARD_FILE)


def test_a_broken_prometheus_rule_is_refused_by_our_schema_naming_the_field(hostile_k8s, tmp_path):
    document = yaml.safe_load((hostile_k8s / "prometheus-rules.yaml").read_text(encoding="utf-8"))
    document["spec"]["groups"][0]["rules"][0]["for"] = "soon"
    (tmp_path / "prometheus-rules.yaml").write_text(yaml.safe_dump(document, allow_unicode=True))
    with pytest.raises(DeployError, match=r"prometheus-rules.yaml: PrometheusRule 'seqcls': field "
                                          r"spec.groups\[0\].rules\[0\]"):
        validate_yaml_file(tmp_path / "prometheus-rules.yaml")


@needs_promtool
def test_a_rule_promtool_rejects_is_a_deploy_error_with_promtools_words(hostile_k8s, tmp_path):
    out = tmp_path / "k8s"
    shutil.copytree(hostile_k8s, out)
    for path in (out / RULES_DIR / RULE_FILE, out / "prometheus-rules.yaml"):
        path.write_text(path.read_text(encoding="utf-8").replace("max by (model) (", "max by (model) ((", 1),
                        encoding="utf-8")
    with pytest.raises(DeployError, match=r"(?s)tritoncls.rules.yml: promtool check rules failed:\n.*parse error"):
        validate_rules(out)


def test_without_promtool_the_rules_get_the_structural_checks_and_the_log_says_so(hostile_k8s, monkeypatch, caplog):
    monkeypatch.setattr(validate_module.shutil, "which", lambda name: None)
    caplog.set_level(logging.WARNING, logger="tritoncls.deploy")
    assert validate_rules(hostile_k8s) == [f"{RULES_DIR}/{RULE_FILE}: Prometheus rules (structural; promtool not found)"]
    assert "promtool not found" in caplog.text


def test_a_fused_repository_counts_its_one_models_queue_and_passes_promtool(deploy_repos, tmp_path):
    """The fused layout serves one model for the three steps: the queue rule and its tests name it alone
    (deploy itself runs promtool on them where it is found)."""
    export = Path(load_repository(deploy_repos["cpu"]).build_config["model"])
    fused = build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo"), layout="fused"))
    out = tmp_path / "k8s"
    deploy(DeployConfig(model_repository=str(fused), output=str(out), target="k8s"))
    queue = next(r for r in rules_of(out) if r.get("record") == "tritoncls:queue_time_per_request:us_rate5m")
    assert 'nv_inference_queue_duration_us{model=~"seqcls"}' in queue["expr"]


def test_the_labels_per_text_panel_is_left_out_only_for_a_known_multi_class_model():
    titles = {multi: [p["title"] for p in dashboard(replace(spec_of(("a", "b")), multi_label=multi))["panels"]]
              for multi in (True, False, None)}
    has = {multi: any(t.startswith("Labels per text") for t in found) for multi, found in titles.items()}
    assert has == {True: True, False: False, None: True}


# ---------------------------------------------------------------------------------------------
# The rules on a real server's series
# ---------------------------------------------------------------------------------------------


@pytest.mark.triton
def test_the_rules_evaluate_on_a_served_models_real_series_through_prometheus(hostile_repo, hostile_k8s, tmp_path):
    """Debian's prometheus scrapes the bundled tritonserver (with the Deployment's latency-summary flag) serving
    the hostile-label repository and evaluates the rendered rule file: every hostile label's share is recorded
    and joins the reference's, the drift distance is the one the shares give, the refused share counts each
    refused request once, the latency and queue rules have values, and the three traffic alerts go pending."""
    import numpy as np
    import tritonclient.http as http

    from tritoncls.server.triton import TritonServer

    server = TritonServer(hostile_repo, log_file=tmp_path / "tritonserver.log", extra_args=(LATENCY_SUMMARIES_ARG,))
    with server:
        target = server.metrics_url.removeprefix("http://").removesuffix("/metrics")
        with support.Prometheus(tmp_path / "prometheus", [target], support.POD_LABELS,
                                rule_files=[hostile_k8s / RULES_DIR / RULE_FILE]) as prometheus:
            client = http.InferenceServerClient(server.http_url)
            texts = np.array([[t.encode()] for t in ("good movie", "bad", "中文 好", "very fine", "awful !", "ok")],
                             dtype=object)
            empty = np.array([[b""]], dtype=object)
            prometheus.wait_for_scrape()  # a sample before the traffic: rate() needs two
            sent, refused = 0, 0
            for i in range(200):
                batch = http.InferInput("text", list(texts.shape), "BYTES")
                batch.set_data_from_numpy(texts)
                client.infer("seqcls", [batch])
                sent += 1
                if i % 5 == 4:
                    bad = http.InferInput("text", [1, 1], "BYTES")
                    bad.set_data_from_numpy(empty)
                    with pytest.raises(Exception, match="empty"):
                        client.infer("seqcls", [bad])
                    refused += 1
            prometheus.wait_for_scrape()
            prometheus.wait_for_scrape()
            time.sleep(2)  # two more rule evaluations (every second)
            recorded = prometheus.query('{__name__=~"tritoncls:.*",model="seqcls"}')
            alerts = prometheus.values('ALERTS{alertstate="pending"}', "alertname")
    by_name: dict[str, list[dict]] = {}
    for item in recorded:
        by_name.setdefault(item["metric"]["__name__"], []).append(item)
    assert {"tritoncls:label_share:ratio_rate1h", "tritoncls:label_drift:tvd1h"} <= set(by_name), (
        sorted(by_name), (tmp_path / "prometheus" / "prometheus.log").read_text()[-2000:])
    live = {i["metric"]["label"]: float(i["value"][1]) for i in by_name["tritoncls:label_share:ratio_rate1h"]}
    reference = {i["metric"]["label"]: float(i["value"][1]) for i in by_name["tritoncls:label_share:reference"]}
    assert set(reference) == set(support.HOSTILE_LABELS) and set(live) <= set(reference)
    assert sum(live.values()) == pytest.approx(1.0)
    tvd = 0.5 * sum(abs(live.get(label, 0.0) - share) for label, share in reference.items())
    assert float(by_name["tritoncls:label_drift:tvd1h"][0]["value"][1]) == pytest.approx(tvd)
    value = {name: float(items[0]["value"][1]) for name, items in by_name.items() if len(items) == 1}
    assert value["tritoncls:refused:ratio_rate30m"] == pytest.approx(refused / (sent + refused), rel=0.05)
    assert value["tritoncls:request_duration_us:p99_max"] > 0 and value["tritoncls:queue_time_per_request:us_rate5m"] >= 0
    assert 0.0 <= value["tritoncls:low_confidence:ratio_rate30m"] <= 1.0
    assert value["tritoncls:texts:increase1h"] >= 600
    assert {"TritonclsLabelDrift", "TritonclsRefusedInputs"} <= set(alerts)
