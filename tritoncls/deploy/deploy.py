"""``deploy``: a built model repository in, validated deployment files out.

The files are rendered into a temporary folder beside ``--output``, validated (every YAML parsed back
and checked against its schema, the Dockerfile checked), and only then moved into place; a folder
that is not a previous deploy output (no ``tritoncls_deploy.json``) is never replaced.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from tritoncls import __version__
from tritoncls.common.files import check_replaceable, stage_folder
from tritoncls.deploy.config import DeployConfig
from tritoncls.deploy.plan import KUBERNETES_VERSION, TRITON_IMAGE, DeployPlan, plan_deployment
from tritoncls.deploy.render import Renderer
from tritoncls.deploy.repository import load_repository
from tritoncls.deploy.validate import validate_output
from tritoncls.errors import DeployError

log = logging.getLogger(__name__)

DEPLOY_MARKER = "tritoncls_deploy.json"
DEPLOY_FORMAT = "tritoncls-deployment"


def deploy(config: DeployConfig, renderer: Renderer | None = None) -> DeployPlan:
    """Render, validate and move into place the deployment ``config`` describes; returns its plan."""
    repo = load_repository(config.model_repository)
    plan = plan_deployment(config, repo)
    target = Path(config.output)
    check_target(target, repo.path, config.force)
    checked = stage_folder(target, lambda staging: _write_and_validate(plan, staging, renderer or Renderer()),
                           "deploying")
    log.info("validated offline: %s", "; ".join(checked))
    return plan


def _write_and_validate(plan: DeployPlan, staging: Path, renderer: Renderer) -> list[str]:
    write_deployment(plan, staging, renderer)
    return validate_output(staging)


def check_target(target: Path, repository: Path, force: bool) -> None:
    """Refuse an output that is, holds or lies in the repository, a file, or a folder deploy did not write."""
    output, source = target.resolve(), repository.resolve()
    if output == source or output in source.parents or source in output.parents:
        raise DeployError(f"--output {target} overlaps the model repository {repository}; choose another --output.")
    check_replaceable(target, DEPLOY_MARKER, force, DeployError, not_ours="was not written by tritoncls deploy",
                      existing="a deployment")


def write_deployment(plan: DeployPlan, root: Path, renderer: Renderer) -> None:
    for output in plan.files:
        path = root / output.name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = output.generate(plan.spec) if output.generate else renderer.render(output.template, **plan.values())
        path.write_text(text, encoding="utf-8")
    if plan.target.copies_repository:
        shutil.copytree(plan.repository.path, root / plan.spec.repository_dir,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / DEPLOY_MARKER).write_text(json.dumps(deploy_record(plan), indent=2) + "\n", encoding="utf-8")


def deploy_record(plan: DeployPlan) -> dict[str, Any]:
    """The marker: what was rendered, for which repository, validated against what."""
    return {"format": DEPLOY_FORMAT, "format_version": 1, "tritoncls": __version__,
            "target": plan.config.target, "device": plan.device, "name": plan.name,
            "ensemble": plan.repository.ensemble, "base_image": TRITON_IMAGE,
            "kubernetes_version": KUBERNETES_VERSION, "files": sorted(f.name for f in plan.files)}
