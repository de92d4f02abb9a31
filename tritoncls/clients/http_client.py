"""HTTP client for a tritoncls ensemble (``tritonclient.http``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tritoncls.clients.base import RequestTimedOut, Signature, TransientError, TritonClient, model_not_loaded
from tritoncls.errors import ClientError

T = TypeVar("T")


class HttpClient(TritonClient):
    """Classify over HTTP/REST (default port 8000). Not thread-safe: use one client per thread."""

    protocol = "http"

    def _connect(self):
        import tritonclient.http as httpclient

        return httpclient.InferenceServerClient(self.url, connection_timeout=self.timeout_s,
                                                network_timeout=self.timeout_s)

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            if str(exc.status()) in ("503", "StatusCode.UNAVAILABLE") or model_not_loaded(exc.message() or ""):
                raise TransientError(exc.message()) from None
            raise ClientError(f"{self.url}: {what} failed ({exc.status()}): {exc.message()}") from None
        except TimeoutError:
            raise RequestTimedOut(f"{self.url}: {what} timed out after {self.timeout_s:g} s; raise --timeout_s or "
                                  f"lower the batch size.") from None
        except (ConnectionError, OSError) as exc:
            self._reconnect()
            raise TransientError(f"{type(exc).__name__}: {exc}") from None

    def _reconnect(self) -> None:
        """A failed connection can leave the pool unusable; start a fresh client."""
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a broken client may fail too
            pass
        self._client = self._connect()

    def _ready(self) -> bool:
        return (self._call("health check", lambda: self._client.is_server_live())
                and self._call("model check", lambda: self._client.is_model_ready(self.model_name)))

    def _metadata_and_config(self) -> tuple[dict[str, Any], dict[str, Any]]:
        metadata = self._call("model metadata", lambda: self._client.get_model_metadata(self.model_name))
        config = self._call("model config", lambda: self._client.get_model_config(self.model_name))
        return metadata, config

    def _infer(self, data: np.ndarray, signature: Signature) -> dict[str, np.ndarray]:
        import tritonclient.http as httpclient

        text = httpclient.InferInput(signature.input_name, list(data.shape), "BYTES")
        text.set_data_from_numpy(data, binary_data=True)
        outputs = [httpclient.InferRequestedOutput(name, binary_data=True) for name in signature.requested(self.all_probs)]
        result = self._call(f"inference on {self.model_name!r}",
                            lambda: self._client.infer(self.model_name, [text], outputs=outputs))
        return {name: result.as_numpy(name) for name in signature.requested(self.all_probs)}
