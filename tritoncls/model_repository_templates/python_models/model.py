"""Triton python model (written by tritoncls build-repo): token ids -> logits with ONNX Runtime or Paddle Inference.

It receives the whole dynamic batch (its inputs allow ragged batches, so requests padded to
different buckets arrive together), runs them as one batch and splits the logits back.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils
import tritoncls_runtime as rt


def error_response(exc: Exception):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.output_name = config["output"][0]["name"]
        self.step = rt.ModelStep.from_parameters(rt.string_parameters(config), version_dir, self.input_names,
                                                 self.output_name)

    def execute(self, requests):
        inputs = []
        for request in requests:
            try:
                ids, types = (pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names)
                inputs.append((ids, types))
            except Exception as exc:  # noqa: BLE001 - this request only
                inputs.append(exc)
        return [error_response(result) if isinstance(result, Exception)
                else pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, result)])
                for result in self.step(inputs)]
