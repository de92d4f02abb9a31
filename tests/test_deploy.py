"""deploy: golden files per target and device, offline schema validation naming file and field, the
packages a repository's python steps need, safe output, the CLI.

Regenerate the golden files after an intended change with
``TRITONCLS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_deploy.py`` and review the diff.
Nothing here builds an image or talks to a cluster: none can run on these machines.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support import run_python_steps
from tritoncls import runtime as rt
from tritoncls.cli import build_parser
from tritoncls.cli import main as cli_main
from tritoncls.cli.deploy import deploy_config
from tritoncls.deploy import DEPLOY_MARKER, DeployConfig, deploy
from tritoncls.deploy.packages import required_packages
from tritoncls.deploy.plan import KUBERNETES_VERSION, TRITON_IMAGE
from tritoncls.deploy.render import TEMPLATES_DIR, Renderer
from tritoncls.deploy.repository import load_repository
from tritoncls.deploy.validate import check_references, validate_dockerfile, validate_yaml_file
from tritoncls.errors import ConfigError, DeployError

GOLDEN = Path(__file__).parent / "golden" / "deploy"
UPDATE_GOLDEN = os.environ.get("TRITONCLS_UPDATE_GOLDEN") == "1"
IMAGE = "registry.example.com/tritoncls-seqcls:1.0"
STORAGE = "s3://models/seqcls"
CASES = [(target, device) for target in ("docker", "k8s", "kserve") for device in ("cpu", "gpu")]
K8S_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "PodMonitor", "PrometheusRule"}


def render(repo: Path, output: Path, target: str, **options) -> Path:
    if target == "kserve":
        options.setdefault("storage_uri", STORAGE)
    deploy(DeployConfig(model_repository=str(repo), output=str(output), target=target, **options))
    return output


def rendered_files(folder: Path) -> dict[str, str]:
    """The rendered text files by path in ``folder`` (not the copied repository, not the marker, which names
    this tritoncls)."""
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != DEPLOY_MARKER and "model_repository" not in p.relative_to(folder).parts}


def yaml_objects(folder: Path) -> list[dict]:
    """The Kubernetes objects rendered into ``folder`` (the prometheus-adapter rule file is not one)."""
    return [doc for path in sorted(folder.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
            if doc and "kind" in doc]


# ---------------------------------------------------------------------------------------------
# Golden files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "device"), CASES, ids=[f"{t}_{d}" for t, d in CASES])
def test_rendered_files_match_the_golden_files(deploy_repos, tmp_path, target, device):
    pins = ("onnxruntime-gpu==1.20.2",) if device == "gpu" else ()
    out = render(deploy_repos[device], tmp_path / "out", target, image=IMAGE, replicas=2, pins=pins)
    files, golden = rendered_files(out), GOLDEN / f"{target}_{device}"
    if UPDATE_GOLDEN:
        shutil.rmtree(golden, ignore_errors=True)
        golden.mkdir(parents=True)
        for name, text in files.items():
            (golden / name).parent.mkdir(parents=True, exist_ok=True)
            (golden / name).write_text(text, encoding="utf-8")
    expected = rendered_files(golden)
    assert sorted(files) == sorted(expected)
    for name, text in files.items():
        assert text == expected[name], f"{name} differs from {golden / name}"


def test_k8s_renders_every_kind_with_probes_shm_gpu_and_the_hpa_metric(deploy_repos, tmp_path):
    objects = {o["kind"]: o for o in yaml_objects(render(deploy_repos["gpu"], tmp_path / "k8s", "k8s", replicas=2,
                                                         pins=("onnxruntime-gpu==1.20.2",)))}
    assert set(objects) == K8S_KINDS
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1" and pod["securityContext"]["runAsNonRoot"]
    assert pod["volumes"][0]["emptyDir"]["medium"] == "Memory"
    assert {p["port"] for p in objects["Service"]["spec"]["ports"]} == {8000, 8001, 8002}
    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["minReplicas"] == 2
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    rule = yaml.safe_load((tmp_path / "k8s" / "prometheus-adapter-rules.yaml").read_text())["rules"]["custom"][0]
    assert rule["name"]["as"] == metric
    assert "nv_inference_queue_duration_us" in rule["metricsQuery"]
    assert 'nv_inference_request_success{<<.LabelMatchers>>,model="seqcls"}' in rule["metricsQuery"]


def test_cpu_manifests_request_no_gpu(deploy_repos, tmp_path):
    for target in ("k8s", "kserve"):
        text = "".join(rendered_files(render(deploy_repos["cpu"], tmp_path / target, target)).values())
        assert "nvidia.com/gpu" not in text


def test_shm_grows_with_the_python_instances_of_the_repository(deploy_repos, tmp_path):
    from tritoncls.builder import BuildConfig, build_repository
    from tritoncls.deploy.plan import sizing

    export = Path(load_repository(deploy_repos["cpu"]).build_config["model"])
    bigger = build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo"), instances=8))
    small, large = sizing(load_repository(deploy_repos["cpu"]), "cpu"), sizing(load_repository(bigger), "cpu")
    assert large.shm_mib > small.shm_mib and large.cpu_request == 8 and large.memory_request_mib > small.memory_request_mib



def test_a_fused_repository_counts_its_one_python_model_once(deploy_repos, tmp_path):
    from tritoncls.builder import BuildConfig, build_repository

    export = Path(load_repository(deploy_repos["cpu"]).build_config["model"])
    fused = load_repository(build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo"),
                                                         layout="fused", instances=2)))
    assert len({m.name for m in fused.models}) == 1 and fused.python_instances == 2


# ---------------------------------------------------------------------------------------------
# Packages the python steps need
# ---------------------------------------------------------------------------------------------


def test_python_tokenizer_and_onnxruntime_backend_need_no_extra_packages(deploy_repos, tmp_path):
    out = render(deploy_repos["plain"], tmp_path / "docker", "docker")
    dockerfile = (out / "Dockerfile").read_text()
    assert not (out / "requirements.txt").exists() and "RUN python3 -m pip" not in dockerfile
    assert "No pip install" in dockerfile and "no extra packages" in (out / "README.md").read_text()
    assert required_packages(load_repository(deploy_repos["plain"]), "gpu", {}) == ()


def test_python_steps_of_that_repository_import_nothing_beyond_numpy(deploy_repos):
    result = run_python_steps(deploy_repos["plain"], ["tokenizers", "onnxruntime", "paddle", "paddlenlp"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [["seqcls_postprocess", "ok"],
                                                                          ["tokenizer", "ok"]]


def test_the_default_repository_runs_with_tokenizers_and_fails_without(deploy_repos):
    result = run_python_steps(deploy_repos["cpu"], [])
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["seqcls_model", "ok"], ["seqcls_postprocess", "ok"], ["tokenizer", "ok"]]
    result = run_python_steps(deploy_repos["cpu"], ["tokenizers"])
    assert result.returncode != 0 and "blocked import: tokenizers" in result.stderr


def test_the_runtime_parses_as_python_3_10_the_images_python():
    sources = [*Path(rt.__file__).parent.glob("*.py"), *(TEMPLATES_DIR.parent / "model_repository_templates").rglob("*.py")]
    for path in sources:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))
        assert "tomllib" not in path.read_text(encoding="utf-8"), path


def test_packages_are_pinned_from_the_build_record_and_gpu_variants_swap_in(deploy_repos):
    repo = load_repository(deploy_repos["cpu"])
    assert [str(r) for r in required_packages(repo, "cpu", {})] == ["tokenizers==0.21.4", "onnxruntime==1.20.1"]
    gpu = required_packages(repo, "gpu", {"onnxruntime-gpu": "1.20.2"})
    assert [str(r) for r in gpu] == ["tokenizers==0.21.4", "onnxruntime-gpu==1.20.2"]


def test_onnxruntime_gpu_without_a_version_asks_for_a_pin(deploy_repos):
    with pytest.raises(DeployError, match=r"no version of onnxruntime-gpu.*--pin onnxruntime-gpu==VERSION"):
        required_packages(load_repository(deploy_repos["cpu"]), "gpu", {})


def test_a_version_without_a_wheel_for_the_images_python_is_capped_and_said(deploy_repos):
    repo = load_repository(deploy_repos["cpu"])
    newer = type(repo)(repo.path, repo.ensemble, repo.build_config, repo.versions | {"onnxruntime": "1.32.0"},
                       repo.models)
    capped = required_packages(newer, "cpu", {})[1]
    assert str(capped) == "onnxruntime==1.23.2" and "1.32.0" in capped.note
    assert str(required_packages(newer, "cpu", {"onnxruntime": "1.32.0"})[1]) == "onnxruntime==1.32.0"


def test_paddlenlp_and_paddle_inference_on_gpu_install_paddle_gpu_from_paddles_index(deploy_repos, tmp_path):
    from tritoncls.builder import BuildConfig, build_repository

    export = Path(load_repository(deploy_repos["cpu"]).build_config["model"])
    repo = build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo"), tokenizer="paddlenlp",
                                        runtime="paddle_inference", device="gpu"))
    out = render(repo, tmp_path / "docker", "docker", pins=("paddlenlp==3.0.0b4", "paddlepaddle==3.3.1"))
    lines = [line.split("#")[0].strip() for line in (out / "requirements.txt").read_text().splitlines()]
    assert [line for line in lines if line] == [
        "--extra-index-url https://www.paddlepaddle.org.cn/packages/stable/cu126/", "paddlenlp==3.0.0b4",
        "paddlepaddle-gpu==3.3.1", "numpy<2", "aistudio-sdk==0.2.6", "datasets==2.21.0", "pyarrow<18", "pandas<2.3",
        "huggingface_hub<0.26"]


# ---------------------------------------------------------------------------------------------
# Validation: errors name the file and the field
# ---------------------------------------------------------------------------------------------


def _edit_yaml(path: Path, edit) -> None:
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document))


def test_a_broken_deployment_is_refused_naming_file_object_and_field(deploy_repos, tmp_path):
    out = render(deploy_repos["cpu"], tmp_path / "k8s", "k8s")
    _edit_yaml(out / "deployment.yaml", lambda d: d["spec"].update(replicas="two"))
    with pytest.raises(DeployError, match=rf"deployment.yaml: Deployment 'seqcls': field spec.replicas: 'two' is not "
                                          rf"of type 'integer'.*Kubernetes {KUBERNETES_VERSION}"):
        validate_yaml_file(out / "deployment.yaml")


def test_an_unknown_container_field_is_refused_by_the_strict_schema(deploy_repos, tmp_path):
    out = render(deploy_repos["cpu"], tmp_path / "k8s", "k8s")
    _edit_yaml(out / "deployment.yaml",
               lambda d: d["spec"]["template"]["spec"]["containers"][0].update(livenesProbe={}))
    with pytest.raises(DeployError, match=r"field spec.template.spec.containers\[0\].*livenesProbe"):
        validate_yaml_file(out / "deployment.yaml")


def test_a_broken_pod_monitor_is_refused_by_our_schema(deploy_repos, tmp_path):
    out = render(deploy_repos["cpu"], tmp_path / "k8s", "k8s")
    _edit_yaml(out / "podmonitor.yaml", lambda d: d["spec"]["podMetricsEndpoints"][0].update(interval="often"))
    with pytest.raises(DeployError, match=r"podmonitor.yaml: PodMonitor 'seqcls': field "
                                          r"spec.podMetricsEndpoints\[0\].interval: 'often'.*structural schema"):
        validate_yaml_file(out / "podmonitor.yaml")


def test_kserve_containers_are_checked_with_kubernetes_own_container_schema(deploy_repos, tmp_path):
    out = render(deploy_repos["cpu"], tmp_path / "kserve", "kserve")
    _edit_yaml(out / "servingruntime.yaml",
               lambda d: d["spec"]["containers"][0]["ports"][0].update(containerPort="http"))
    with pytest.raises(DeployError, match=r"servingruntime.yaml: ServingRuntime 'seqcls': field "
                                          r"spec.containers\[0\].ports\[0\].containerPort"):
        validate_yaml_file(out / "servingruntime.yaml")
    _edit_yaml(out / "inferenceservice.yaml", lambda d: d["spec"]["predictor"]["model"].pop("storageUri"))
    with pytest.raises(DeployError, match=r"inferenceservice.yaml: InferenceService 'seqcls': field "
                                          r"spec.predictor.model: 'storageUri' is a required property"):
        validate_yaml_file(out / "inferenceservice.yaml")


def test_references_between_manifests_are_checked(deploy_repos, tmp_path):
    out = render(deploy_repos["cpu"], tmp_path / "k8s", "k8s")
    _edit_yaml(out / "service.yaml", lambda d: d["spec"]["selector"].update({"app.kubernetes.io/instance": "other"}))
    with pytest.raises(DeployError, match=r"service.yaml: field spec.selector: .* does not select the Deployment's pods"):
        check_references(out)
    out = render(deploy_repos["cpu"], tmp_path / "k8s2", "k8s")
    _edit_yaml(out / "deployment.yaml",
               lambda d: d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"].update(port="web"))
    with pytest.raises(DeployError, match=r"deployment.yaml: field spec.template.spec.containers\[0\].livenessProbe"
                                          r".httpGet.port: 'web' names nothing rendered"):
        check_references(out)
    out = render(deploy_repos["cpu"], tmp_path / "kserve", "kserve")
    _edit_yaml(out / "inferenceservice.yaml", lambda d: d["spec"]["predictor"]["model"].update(runtime="triton"))
    with pytest.raises(DeployError, match=r"inferenceservice.yaml: field spec.predictor.model.runtime: 'triton'"):
        check_references(out)


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "service.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: [x\n")
    with pytest.raises(DeployError, match=r"service.yaml:\d+: not valid YAML"):
        validate_yaml_file(path)


def test_a_dockerfile_running_as_root_or_on_another_image_is_refused(deploy_repos, tmp_path):
    out = render(deploy_repos["cpu"], tmp_path / "docker", "docker")
    text = (out / "Dockerfile").read_text()
    (out / "Dockerfile").write_text(text.replace("USER 10001:10001", "USER root"))
    with pytest.raises(DeployError, match=r"Dockerfile: the last USER must be a non-root user"):
        validate_dockerfile(out / "Dockerfile")
    (out / "Dockerfile").write_text(text.replace(TRITON_IMAGE, "nvcr.io/nvidia/tritonserver:latest"))
    with pytest.raises(DeployError, match=r"Dockerfile: the first instruction must be FROM"):
        validate_dockerfile(out / "Dockerfile")


def test_a_template_that_renders_a_bad_manifest_leaves_nothing_behind(deploy_repos, tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    hpa = templates / "k8s" / "hpa.yaml.j2"
    hpa.write_text(hpa.read_text().replace("maxReplicas:", "maxReplica:"))
    config = DeployConfig(model_repository=str(deploy_repos["cpu"]), output=str(tmp_path / "out"), target="k8s")
    with pytest.raises(DeployError, match=r"hpa.yaml: HorizontalPodAutoscaler 'seqcls': field spec: .*maxReplica"):
        deploy(config, Renderer(templates))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["templates"]


# ---------------------------------------------------------------------------------------------
# Safe output
# ---------------------------------------------------------------------------------------------


def test_docker_output_holds_the_repository_and_a_marker(deploy_repos, tmp_path):
    out = render(deploy_repos["cpu"], tmp_path / "docker", "docker")
    assert (out / "model_repository" / rt.contract.REPOSITORY_MARKER).is_file()
    assert json.loads((out / DEPLOY_MARKER).read_text())["target"] == "docker"
    assert "!model_repository" in (out / ".dockerignore").read_text()


def test_a_folder_not_written_by_deploy_is_never_replaced(deploy_repos, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DeployError, match="not written by tritoncls deploy"):
        render(deploy_repos["cpu"], tmp_path / "mine", "k8s")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_an_existing_deployment_is_replaced_only_with_force(deploy_repos, tmp_path):
    render(deploy_repos["cpu"], tmp_path / "out", "k8s")
    with pytest.raises(DeployError, match="pass --force"):
        render(deploy_repos["cpu"], tmp_path / "out", "docker")
    render(deploy_repos["cpu"], tmp_path / "out", "docker", force=True)
    assert (tmp_path / "out" / "Dockerfile").is_file() and not (tmp_path / "out" / "deployment.yaml").exists()


def test_output_inside_the_repository_is_refused(deploy_repos, tmp_path):
    with pytest.raises(DeployError, match="overlaps the model repository"):
        render(deploy_repos["cpu"], deploy_repos["cpu"] / "deploy", "k8s")


def test_a_folder_without_the_build_marker_is_not_a_repository(tmp_path):
    with pytest.raises(DeployError, match=r"not a tritoncls model repository \(no tritoncls_build.json\)"):
        render(tmp_path, tmp_path / "out", "docker")


# ---------------------------------------------------------------------------------------------
# Options and the CLI
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"target": "helm"}, "--target"),
    ({"replicas": 0}, "--replicas"),
    ({"name": "Seq_Cls"}, "--object_name"),
    ({"pins": ("onnxruntime>=1",)}, "--pin"),
    ({"target": "kserve"}, "--storage_uri: --target kserve needs"),
    ({"storage_uri": STORAGE}, "applies to --target kserve only"),
])
def test_bad_options_are_refused_with_the_flag_named(options, message):
    with pytest.raises(ConfigError, match=message):
        DeployConfig(model_repository="repo", output="out", **options)


def test_cli_flags_parse_into_the_config():
    args = build_parser().parse_args([
        "deploy", "--model-repository", "R", "--output", "D", "--target", "kserve", "--device", "gpu",
        "--replicas", "3", "--object-name", "qic", "--image", "reg/x:1", "--storage-uri", STORAGE,
        "--pin", "onnxruntime-gpu==1.20.2", "--pin", "tokenizers==0.21.4", "--force"])
    assert deploy_config(args) == DeployConfig(
        model_repository="R", output="D", target="kserve", device="gpu", replicas=3, name="qic", image="reg/x:1",
        storage_uri=STORAGE, pins=("onnxruntime-gpu==1.20.2", "tokenizers==0.21.4"), force=True)


def test_deploys_older_name_flag_still_names_the_objects_and_says_which_flag_replaces_it(capsys):
    args = build_parser().parse_args(["deploy", "--model-repository", "R", "--output", "D", "--name", "qic"])
    assert deploy_config(args).name == "qic"
    err = capsys.readouterr().err
    assert "--name is deprecated here" in err and "use --object_name" in err


def test_cli_kserve_without_storage_uri_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["deploy", "--model-repository", "R", "--output", "D", "--target", "kserve"])
    assert exit_info.value.code == 2 and "--storage_uri" in capsys.readouterr().err


def test_cli_renders_and_prints_what_the_repository_needs(deploy_repos, tmp_path, capsys):
    code = cli_main(["deploy", "--model-repository", str(deploy_repos["plain"]), "--output", str(tmp_path / "d"),
                     "--target", "k8s"])
    assert code == 0 and "no extra packages" in capsys.readouterr().out
    assert {o["kind"] for o in yaml_objects(tmp_path / "d")} == K8S_KINDS


def test_docker_command_expands_the_admin_key_and_refuses_to_start_without_it(tmp_path):
    """The Dockerfile's CMD runs through sh so ${TRITON_ADMIN_KEY} expands; unset, the container stops with why."""
    import os
    import stat
    import subprocess

    from tritoncls.deploy.plan import docker_server

    fake = tmp_path / "bin" / "tritonserver"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    command = docker_server().shell_command
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "TRITON_ADMIN_KEY": "0123456789abcdef-key"}
    args = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert "--model-control-mode=none" in args
    assert ("--http-restricted-api=shared-memory,model-repository,statistics,trace,logging:admin-key="
            "0123456789abcdef-key") in args
    del env["TRITON_ADMIN_KEY"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "run the image with -e TRITON_ADMIN_KEY=KEY" in refused.stderr


def test_a_new_target_is_one_registry_object(deploy_repos, tmp_path, monkeypatch):
    """Nothing outside tritoncls.deploy.targets looks a target up by name: a registered object is deployable."""
    from tritoncls.deploy import targets

    def spec(config, repo, name, requirements, sizing):
        return targets.TARGETS["k8s"].spec(config, repo, name, requirements, sizing)

    extra = targets.Target("k8s-core", (targets.OutputFile("k8s/deployment.yaml.j2", "deployment.yaml"),
                                        targets.OutputFile("k8s/service.yaml.j2", "service.yaml")),
                           "Deployment and Service only.", "k8s/usage.md.j2", spec)
    monkeypatch.setitem(targets.TARGETS, "k8s-core", extra)
    out = render(deploy_repos["cpu"], tmp_path / "core", "k8s-core")
    assert sorted(rendered_files(out)) == ["README.md", "deployment.yaml", "service.yaml"]
    assert "Deployment and Service only." in (out / "README.md").read_text(encoding="utf-8")
    assert {o["kind"] for o in yaml_objects(out)} == {"Deployment", "Service"}
