"""gRPC client for a tritoncls ensemble (``tritonclient.grpc``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tritoncls.clients.base import RequestTimedOut, Signature, TransientError, TritonClient, model_not_loaded
from tritoncls.errors import ClientError

T = TypeVar("T")
_RETRY = ("StatusCode.UNAVAILABLE",)


class GrpcClient(TritonClient):
    """Classify over gRPC (default port 8001). One client may be shared by threads."""

    protocol = "grpc"

    def _connect(self):
        import tritonclient.grpc as grpcclient

        return grpcclient.InferenceServerClient(self.url)

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            status = str(exc.status())
            if status in _RETRY or model_not_loaded(exc.message() or ""):
                raise TransientError(exc.message()) from None
            if status == "StatusCode.DEADLINE_EXCEEDED":
                raise RequestTimedOut(f"{self.url}: {what} timed out after {self.timeout_s:g} s; raise --timeout_s or "
                                      f"lower the batch size.") from None
            raise ClientError(f"{self.url}: {what} failed ({status}): {exc.message()}") from None

    def _ready(self) -> bool:
        client = self._client
        return (self._call("health check", client.is_server_live, client_timeout=self.timeout_s)
                and self._call("model check", client.is_model_ready, self.model_name, client_timeout=self.timeout_s))

    def _metadata_and_config(self) -> tuple[dict[str, Any], dict[str, Any]]:
        client, name = self._client, self.model_name
        metadata = self._call("model metadata", client.get_model_metadata, name, as_json=True, client_timeout=self.timeout_s)
        config = self._call("model config", client.get_model_config, name, as_json=True, client_timeout=self.timeout_s)
        return metadata, config.get("config", config)

    def _infer(self, data: np.ndarray, signature: Signature) -> dict[str, np.ndarray]:
        import tritonclient.grpc as grpcclient

        text = grpcclient.InferInput(signature.input_name, list(data.shape), "BYTES")
        text.set_data_from_numpy(data)
        outputs = [grpcclient.InferRequestedOutput(name) for name in signature.requested(self.all_probs)]
        result = self._call(f"inference on {self.model_name!r}", self._client.infer, self.model_name, [text],
                            outputs=outputs, client_timeout=self.timeout_s)
        return {name: result.as_numpy(name) for name in signature.requested(self.all_probs)}
