"""Run the real Triton Inference Server over a model repository (``tritoncls serve``)."""

from tritoncls.server.triton import (
    AdminKey,
    ServerInstall,
    TritonServer,
    find_tritonserver,
    free_port,
    open_admin_warning,
)

__all__ = ["AdminKey", "ServerInstall", "TritonServer", "find_tritonserver", "free_port", "open_admin_warning"]
