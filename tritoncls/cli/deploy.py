"""``tritoncls deploy``: render validated deployment files (Dockerfile, Kubernetes, KServe) for a repository."""

from __future__ import annotations

import argparse

from tritoncls.cli._args import DeprecatedAlias, add_output, config_from_args, flag, shared
from tritoncls.deploy.config import DEVICES, TARGETS, DeployConfig
from tritoncls.errors import UsageError

NAME = "deploy"
STAGE = "tritoncls.deploy"
HELP = "render a Dockerfile, Kubernetes or KServe manifests for a model repository"
DESCRIPTION = (
    "Render, for a repository written by `tritoncls build-repo`, a Dockerfile on NVIDIA's Triton image that "
    "installs exactly the packages the python steps import (docker), a Deployment, Service, autoscaler, "
    "disruption budget, PodMonitor, Prometheus rules (checked with promtool where installed) and a Grafana dashboard "
    "(k8s), or a KServe ServingRuntime and InferenceService (kserve). Every "
    "manifest is validated offline against the Kubernetes schemas (or tritoncls's own for the custom kinds) "
    "before the folder is moved into place."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """deploy's options."""
    shared(parser, "model_repository", required=True)
    add_output(parser, "the deployment folder (the docker target also copies the repository into it)", required=True)
    flag(parser, "target", default="docker", choices=tuple(TARGETS), help="what to render")
    shared(parser, "device", detail="the server pods (default: the device the repository was built for)",
           default=None, choices=DEVICES)
    flag(parser, "replicas", type=int, default=1, help="server pods; the autoscaler may add up to 4x as many")
    # Not the shared --name (an ensemble's name elsewhere): its own flag, --name kept as a deprecated alias.
    flag(parser, "object_name", default=None,
         help="name of the Kubernetes objects and of the image (default: the ensemble's name, lowercased)")
    parser.add_argument("--name", dest="object_name", action=DeprecatedAlias, new="--object_name",
                        why="elsewhere it names an ensemble", help=argparse.SUPPRESS)
    flag(parser, "image", default=None,
         help="image to run (default: tritoncls-NAME:VERSION, the image the docker target builds; for kserve "
              "NVIDIA's Triton image when the python steps need no extra packages)")
    flag(parser, "storage_uri", default=None, help="kserve: where the repository is stored (s3://, gs://, pvc://, ...)")
    flag(parser, "pin", action="append", default=None, metavar="NAME==VERSION", dest="pins",
         help="pin a package the python steps import, overriding or completing the build record's versions "
              "(repeatable)")
    flag(parser, "force", action="store_true", help="replace an existing deployment at --output")


def deploy_config(args: argparse.Namespace) -> DeployConfig:
    """The :class:`DeployConfig` of ``args``."""
    if TARGETS[args.target].needs_storage_uri and not args.storage_uri:
        raise UsageError(f"--target {args.target} needs --storage_uri: where the repository is stored, "
                         f"e.g. s3://bucket/seqcls")
    return config_from_args(DeployConfig, args, name=args.object_name, pins=tuple(args.pins or ()))


def run(args: argparse.Namespace) -> int:
    """Render the deployment described by ``args``."""
    from tritoncls.deploy import deploy

    plan = deploy(deploy_config(args))
    print(f"{plan.config.target} deployment: {plan.config.output} ({', '.join(f.name for f in plan.files)})")
    for note in plan.notes:
        print(f"  {note}")
    return 0
