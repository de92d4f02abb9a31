"""Triton python model (written by tritoncls build-repo): texts -> token ids padded to a length bucket.

Thin on purpose: the work is in tritoncls_runtime.py beside this file; settings come from the
``parameters`` of config.pbtxt.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils
import tritoncls_runtime as rt


def error_response(exc: Exception):
    code = pb_utils.TritonError.INVALID_ARG if isinstance(exc, rt.RequestError) else pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc), code))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.step = rt.TokenizeStep.from_parameters(rt.string_parameters(config), version_dir)

    def execute(self, requests):
        columns = []
        for request in requests:
            try:
                columns.append(pb_utils.get_input_tensor_by_name(request, rt.TEXT).as_numpy())
            except Exception as exc:  # noqa: BLE001 - this request only
                columns.append(exc)
        responses = []
        for result in self.step(columns):
            if isinstance(result, Exception):
                responses.append(error_response(result))
            else:
                ids, types = result
                responses.append(pb_utils.InferenceResponse(
                    [pb_utils.Tensor(rt.INPUT_IDS, ids), pb_utils.Tensor(rt.TOKEN_TYPE_IDS, types)]))
        return responses
