"""Triton python model (written by tritoncls build-repo --layout fused): texts -> label, confidence and top-k,
or label sets (multi-label, hierarchical).

The ensemble's three steps (tokenize, model, postprocess) in one python model, so a text pays one
python-backend execution instead of three. Its inputs and outputs are the ensemble's; the work is in
the tritoncls_runtime package beside this file, settings in the ``parameters`` of config.pbtxt.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils
import tritoncls_runtime as rt


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.output_names = {tensor["name"] for tensor in config["output"]}
        self.step = rt.FusedStep.from_parameters(rt.string_parameters(config), version_dir)
        rt.triton.install_metrics(pb_utils, self.step)  # label, confidence and length counters

    def execute(self, requests):
        columns = rt.triton.request_inputs(pb_utils, requests, [rt.TEXT])
        return rt.triton.responses(pb_utils, self.step(columns), self.tensors)

    def tensors(self, result):
        return {name: array for name, array in result.tensors().items() if name in self.output_names}

    def finalize(self):
        rt.triton.close_metrics(self.step)  # the metrics tallied since the last second
