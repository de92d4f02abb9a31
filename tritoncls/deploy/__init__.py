"""Render validated deployment files for a built model repository (``tritoncls deploy``): a Dockerfile
on NVIDIA's Triton image, Kubernetes manifests, or KServe resources."""

from tritoncls.deploy.config import DeployConfig
from tritoncls.deploy.deploy import DEPLOY_MARKER, deploy

__all__ = ["DEPLOY_MARKER", "DeployConfig", "deploy"]
