"""Offline validation of a rendered deployment: every YAML file parsed back, every manifest checked.

Core kinds (Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget) are validated with the
``kubernetes-validate`` package against the strict OpenAPI schemas (unknown fields refused) of
Kubernetes :data:`~tritoncls.deploy.plan.KUBERNETES_VERSION`; the custom kinds against
:mod:`tritoncls.deploy.schemas` (ours, not the CRDs'). Then what schemas cannot see: selectors select
the pods, names refer to rendered objects, probes' ports and volume mounts exist. The Dockerfile gets
structural checks. The Prometheus rule file is checked by ``promtool check rules`` and its unit tests run by
``promtool test rules`` where promtool is on PATH (Debian's ``prometheus`` package; scripts/system_deps.sh
installs it), after our structural schema in every case; the PrometheusRule must hold the same groups; the
Grafana dashboard gets a structural schema (Grafana cannot run here).
Errors name the file, the object and the field.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tritoncls.deploy.dashboard import DASHBOARD_FILE
from tritoncls.deploy.plan import KUBERNETES_VERSION, TRITON_IMAGE
from tritoncls.deploy.rules import RULE_FILE, RULES_DIR, TEST_FILE
from tritoncls.deploy.schemas import ADAPTER_RULES, CRD_SCHEMAS, GRAFANA_DASHBOARD, PROMETHEUS_RULES, RULE_TESTS
from tritoncls.errors import DeployError

log = logging.getLogger(__name__)

ADAPTER_RULES_FILE = "prometheus-adapter-rules.yaml"
PROMETHEUS_RULE_FILE = "prometheus-rules.yaml"
PROMTOOL_TIMEOUT_S = 120
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(==|<|<=)[^\s#]+$")


def validate_output(folder: Path) -> list[str]:
    """Validate every file of a rendered deployment in ``folder``; returns the kinds checked, per file."""
    checked = [f"{path.name}: {kind}" for path in sorted(folder.glob("*.yaml")) for kind in validate_yaml_file(path)]
    check_references(folder)
    checked += validate_rules(folder)
    if (folder / DASHBOARD_FILE).is_file():
        validate_dashboard(folder / DASHBOARD_FILE)
        checked.append(f"{DASHBOARD_FILE}: Grafana dashboard (structural)")
    if (folder / "Dockerfile").is_file():
        validate_dockerfile(folder / "Dockerfile")
        checked.append("Dockerfile")
    if (folder / "requirements.txt").is_file():
        validate_requirements(folder / "requirements.txt")
    return checked


def parse_documents(path: Path) -> list[Any]:
    """The YAML documents of ``path`` (empty ones dropped); a syntax error names the line."""
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise DeployError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the template that "
                          f"rendered it.") from None
    documents = [doc for doc in documents if doc is not None]
    if not documents:
        raise DeployError(f"{path}: holds no YAML document.")
    return documents


def validate_yaml_file(path: Path) -> list[str]:
    """Validate each document of ``path``; returns their kinds."""
    documents = parse_documents(path)
    if path.name == ADAPTER_RULES_FILE:
        for document in documents:
            _check_schema(path, "prometheus-adapter rules", document, ADAPTER_RULES)
        return ["prometheus-adapter rules"]
    return [validate_manifest(path, document) for document in documents]


def validate_manifest(path: Path, manifest: Any) -> str:
    """Validate one Kubernetes object read from ``path``; returns its kind."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("kind"), str) \
            or not isinstance(manifest.get("apiVersion"), str):
        raise DeployError(f"{path}: a document is not a Kubernetes object (fields 'apiVersion' and 'kind' missing).")
    kind, api_version = manifest["kind"], manifest["apiVersion"]
    what = f"{kind} {(manifest.get('metadata') or {}).get('name', '?')!r}"
    schema = CRD_SCHEMAS.get((api_version, kind))
    if schema is not None:
        _check_schema(path, what, manifest, schema)
        if kind == "ServingRuntime":
            _check_pod_parts(path, what, manifest["spec"])
    else:
        _check_core(path, what, manifest)
    return kind


def _check_core(path: Path, what: str, manifest: dict[str, Any]) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        raise DeployError(f"{path}: {what}: apiVersion {manifest['apiVersion']!r} kind {manifest['kind']!r} is not a "
                          f"Kubernetes {KUBERNETES_VERSION} kind and has no schema in tritoncls.deploy.schemas.") from None
    except kubernetes_validate.ValidationError as exc:
        field = _field_path(exc.path)
        raise DeployError(f"{path}: {what}: field {field}: {exc.message} (Kubernetes {KUBERNETES_VERSION} schema); "
                          f"fix the template that rendered it.") from None


def _check_pod_parts(path: Path, what: str, spec: dict[str, Any]) -> None:
    """A ServingRuntime's containers and volumes, checked as a Pod's with Kubernetes' own schemas (the
    field paths, ``spec.containers[i]...``, are the same in both)."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
           "spec": {"containers": spec["containers"], "volumes": spec.get("volumes", [])}}
    _check_core(path, what, pod)


def _check_schema(path: Path, what: str, document: Any, schema: dict[str, Any]) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(document))
    if error is not None:
        raise DeployError(f"{path}: {what}: field {_field_path(error.absolute_path)}: {error.message} "
                          f"(tritoncls's structural schema); fix the template that rendered it.")


def _field_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def check_references(folder: Path) -> None:
    """What schemas cannot see: selectors that select the pods, names that name the rendered objects,
    probe ports and volume mounts that exist."""
    by_kind = {doc["kind"]: (path.name, doc) for path in sorted(folder.glob("*.yaml"))
               if path.name != ADAPTER_RULES_FILE for doc in parse_documents(path)}
    if "Deployment" in by_kind:
        _check_deployment_references(by_kind)
    if "InferenceService" in by_kind and "ServingRuntime" in by_kind:
        file, service = by_kind["InferenceService"]
        runtime = by_kind["ServingRuntime"][1]["metadata"]["name"]
        _refer(file, "spec.predictor.model.runtime", service["spec"]["predictor"]["model"].get("runtime"), {runtime})


def _check_deployment_references(by_kind: dict[str, tuple[str, dict[str, Any]]]) -> None:
    file, deployment = by_kind["Deployment"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"].get("labels", {})
    _select(file, "spec.selector.matchLabels", deployment["spec"]["selector"].get("matchLabels", {}), labels)
    selectors = {"Service": "spec.selector", "PodDisruptionBudget": "spec.selector.matchLabels",
                 "PodMonitor": "spec.selector.matchLabels"}
    for kind, field in selectors.items():
        if kind in by_kind:
            other_file, other = by_kind[kind]
            value: Any = other
            for key in field.split("."):
                value = value.get(key, {})
            _select(other_file, field, value, labels)
    if "HorizontalPodAutoscaler" in by_kind:
        other_file, hpa = by_kind["HorizontalPodAutoscaler"]
        _refer(other_file, "spec.scaleTargetRef.name", hpa["spec"]["scaleTargetRef"]["name"],
               {deployment["metadata"]["name"]})
    volumes = {volume["name"] for volume in pod["spec"].get("volumes", [])}
    for i, container in enumerate(pod["spec"]["containers"]):
        where = f"spec.template.spec.containers[{i}]"
        ports = {port.get("name") for port in container.get("ports", [])}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if isinstance(port, str):
                _refer(file, f"{where}.{probe}.httpGet.port", port, ports)
        for j, mount in enumerate(container.get("volumeMounts", [])):
            _refer(file, f"{where}.volumeMounts[{j}].name", mount["name"], volumes)


def _select(file: str, field: str, selector: Any, labels: dict[str, str]) -> None:
    if not selector or any(labels.get(key) != value for key, value in selector.items()):
        raise DeployError(f"{file}: field {field}: {selector} does not select the Deployment's pods (labels {labels}); "
                          f"fix the template that rendered it.")


def _refer(file: str, field: str, value: Any, known: set[Any]) -> None:
    if value not in known:
        raise DeployError(f"{file}: field {field}: {value!r} names nothing rendered (known: {sorted(known)}); "
                          f"fix the template that rendered it.")


def validate_dockerfile(path: Path) -> None:
    """Pinned base image, a non-root USER, a HEALTHCHECK on /v2/health/ready, COPY sources in the context."""
    instructions = _instructions(path.read_text(encoding="utf-8"))
    first = instructions[0] if instructions else ("", "")
    checks = [
        (first == ("FROM", TRITON_IMAGE), f"the first instruction must be FROM {TRITON_IMAGE} (found {' '.join(first)!r})"),
        (_last("USER", instructions) not in (None, "0", "root"), "the last USER must be a non-root user"),
        (any(op == "HEALTHCHECK" and "/v2/health/ready" in arg for op, arg in instructions),
         "HEALTHCHECK must query /v2/health/ready"),
        (_exec_form(_last("CMD", instructions)), "CMD must be a JSON array (the exec form)"),
    ]
    checks += [((path.parent / source).exists(), f"COPY source {source!r} is not in the build context")
               for source in _copy_sources(instructions)]
    for ok, problem in checks:
        if not ok:
            raise DeployError(f"{path}: {problem}; fix the template that rendered it.")


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in lines if line and not line.startswith("#")]


def _last(op: str, instructions: list[tuple[str, str]]) -> str | None:
    values = [arg for name, arg in instructions if name == op]
    if not values:
        return None
    return values[-1].split(":")[0] if op == "USER" else values[-1]


def _exec_form(argument: str | None) -> bool:
    try:
        value = json.loads(argument or "")
    except json.JSONDecodeError:
        return False
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    sources = []
    for op, arg in instructions:
        if op == "COPY" and "--from=" not in arg:
            words = [w for w in arg.split() if not w.startswith("--")]
            sources += words[:-1]
    return sources


def validate_requirements(path: Path) -> None:
    """Every requirement line pins its package (``name==version``, or a constraint's upper bound)."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        requirement = line.split("#", 1)[0].strip()
        if requirement and not requirement.startswith("--") and not _PINNED.match(requirement):
            raise DeployError(f"{path}:{number}: {requirement!r} is not pinned (NAME==VERSION); fix the build record's "
                              f"versions or pass --pin.")


def validate_rules(folder: Path) -> list[str]:
    """The rule file and its tests against our schemas, the PrometheusRule holding the same groups, then
    promtool (check and unit tests) where it is found; returns what was checked."""
    rules_dir = folder / RULES_DIR
    rule_file, test_file = rules_dir / RULE_FILE, rules_dir / TEST_FILE
    if not rule_file.is_file():
        return []
    rules = parse_documents(rule_file)[0]
    _check_schema(rule_file, "Prometheus rule file", rules, PROMETHEUS_RULES)
    if test_file.is_file():
        _check_schema(test_file, "promtool unit tests", parse_documents(test_file)[0], RULE_TESTS)
    operator = folder / PROMETHEUS_RULE_FILE
    if operator.is_file() and parse_documents(operator)[0]["spec"]["groups"] != rules["groups"]:
        raise DeployError(f"{operator}: field spec.groups differs from the groups of {rule_file}; both are rendered "
                          f"from the same rules, fix the code that wrote them.")
    promtool = shutil.which("promtool")
    if promtool is None:
        log.warning("promtool not found: %s and its unit tests were checked against tritoncls's structural schemas "
                    "only (apt-get install prometheus brings promtool; then run promtool test rules %s)",
                    rule_file, test_file)
        return [f"{RULES_DIR}/{RULE_FILE}: Prometheus rules (structural; promtool not found)"]
    _promtool(promtool, "check", rule_file)
    checked = [f"{RULES_DIR}/{RULE_FILE}: promtool check rules"]
    if test_file.is_file():
        _promtool(promtool, "test", test_file)
        checked.append(f"{RULES_DIR}/{TEST_FILE}: promtool test rules")
    return checked


def _promtool(promtool: str, command: str, path: Path) -> None:
    """``promtool check rules FILE`` or ``promtool test rules FILE``, run in the file's folder (the tests name
    the rule file relative to it); a failure is a DeployError with promtool's words."""
    try:
        result = subprocess.run([promtool, command, "rules", path.name], cwd=path.parent, capture_output=True,
                                text=True, timeout=PROMTOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise DeployError(f"{path}: promtool {command} rules did not finish in {PROMTOOL_TIMEOUT_S} s.") from None
    if result.returncode != 0:
        words = (result.stdout + result.stderr).strip()
        raise DeployError(f"{path}: promtool {command} rules failed:\n{words}\nFix the rules that "
                          f"tritoncls/deploy/rules.py wrote.")


def validate_dashboard(path: Path) -> None:
    """The dashboard's JSON against our structural schema; panel ids unique, query ids unique per panel."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DeployError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); fix tritoncls/deploy/dashboard.py.") from None
    _check_schema(path, "Grafana dashboard", document, GRAFANA_DASHBOARD)
    ids = [panel["id"] for panel in document["panels"]]
    if len(ids) != len(set(ids)):
        raise DeployError(f"{path}: field panels: panel ids {ids} repeat; fix tritoncls/deploy/dashboard.py.")
    for i, panel in enumerate(document["panels"]):
        refs = [target["refId"] for target in panel["targets"]]
        if len(refs) != len(set(refs)):
            raise DeployError(f"{path}: field panels[{i}].targets: refIds {refs} repeat; fix "
                              f"tritoncls/deploy/dashboard.py.")
