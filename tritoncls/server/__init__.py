"""Run the real Triton Inference Server over a model repository (``tritoncls serve``)."""

from tritoncls.server.triton import ServerInstall, TritonServer, find_tritonserver, free_port

__all__ = ["ServerInstall", "TritonServer", "find_tritonserver", "free_port"]
