"""Triton python model (written by tritoncls build-repo): logits -> label, confidence and top-k.

Label names come from label.txt beside this file, never from the config, so any label text
(quotes, braces, non-ASCII) survives.
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
        self.logits_name = config["input"][0]["name"]
        self.output_names = {tensor["name"] for tensor in config["output"]}
        self.step = rt.PostprocessStep.from_parameters(rt.string_parameters(config), version_dir)

    def execute(self, requests):
        inputs = []
        for request in requests:
            try:
                inputs.append(pb_utils.get_input_tensor_by_name(request, self.logits_name).as_numpy())
            except Exception as exc:  # noqa: BLE001 - this request only
                inputs.append(exc)
        return [error_response(result) if isinstance(result, Exception) else self.response(result)
                for result in self.step(inputs)]

    def response(self, result):
        arrays = {rt.LABEL: result.label, rt.CONFIDENCE: result.confidence,
                  rt.TOP_K_LABELS: result.top_k_labels, rt.TOP_K_PROBS: result.top_k_probs}
        return pb_utils.InferenceResponse(
            [pb_utils.Tensor(name, array) for name, array in arrays.items() if name in self.output_names])
