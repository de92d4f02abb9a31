"""Triton python model (written by tritoncls build-repo): logits -> label, confidence and top-k (multi-class),
or each text's label set with its probabilities (multi-label, hierarchical).

Label names come from label.txt beside this file, never from the config, so any label text
(quotes, braces, non-ASCII) survives.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils
import tritoncls_runtime as rt


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.logits_name = config["input"][0]["name"]
        self.output_names = {tensor["name"] for tensor in config["output"]}
        self.step = rt.PostprocessStep.from_parameters(rt.string_parameters(config), version_dir)
        rt.triton.install_metrics(pb_utils, self.step)  # label, confidence and length counters

    def execute(self, requests):
        inputs = rt.triton.request_inputs(pb_utils, requests, [self.logits_name])
        return rt.triton.responses(pb_utils, self.step(inputs), self.tensors)

    def tensors(self, result):
        return {name: array for name, array in result.tensors().items() if name in self.output_names}

    def finalize(self):
        rt.triton.close_metrics(self.step)  # the metrics tallied since the last second
