"""Triton python model (written by tritoncls build-repo): texts -> token ids padded to a length bucket.

Thin on purpose: the work is in the tritoncls_runtime package beside this file; settings come from the
``parameters`` of config.pbtxt.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils
import tritoncls_runtime as rt


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.step = rt.TokenizeStep.from_parameters(rt.string_parameters(config), version_dir)
        rt.triton.install_metrics(pb_utils, self.step)  # label, confidence and length counters

    def execute(self, requests):
        columns = rt.triton.request_inputs(pb_utils, requests, [rt.TEXT])
        return rt.triton.responses(pb_utils, self.step(columns),
                                   lambda padded: {rt.INPUT_IDS: padded[0], rt.TOKEN_TYPE_IDS: padded[1]})

    def finalize(self):
        rt.triton.close_metrics(self.step)  # the metrics tallied since the last second
