"""Triton python model (written by tritoncls build-repo): token ids -> logits with ONNX Runtime or Paddle Inference.

It receives the whole dynamic batch (its inputs allow ragged batches, so requests padded to
different buckets arrive together), runs them as one batch and splits the logits back.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils
import tritoncls_runtime as rt


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.output_name = config["output"][0]["name"]
        self.step = rt.ModelStep.from_parameters(rt.string_parameters(config), version_dir, self.input_names,
                                                 self.output_name)

    def execute(self, requests):
        inputs = rt.triton.request_inputs(pb_utils, requests, self.input_names)
        return rt.triton.responses(pb_utils, self.step(inputs), lambda logits: {self.output_name: logits})
