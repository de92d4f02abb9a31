"""Run the real Triton Inference Server over a model repository (``tritoncls serve``).

- :mod:`.auth`: the admin key that locks Triton's administrative APIs, and the loopback policy;
- :mod:`.install`: finding a usable ``tritonserver`` and its python-backend stub, with diagnostics;
- :mod:`.process`: the server's process group and shared memory, reaped when it stops or dies;
- :mod:`.triton`: :class:`TritonServer`, which starts, watches and stops one server;
- :mod:`.memory`: the memory a served repository takes.
"""

from tritoncls.server.auth import AdminKey, open_admin_warning
from tritoncls.server.install import ServerInstall, find_tritonserver
from tritoncls.server.triton import TritonServer, free_port

__all__ = ["AdminKey", "ServerInstall", "TritonServer", "find_tritonserver", "free_port", "open_admin_warning"]
