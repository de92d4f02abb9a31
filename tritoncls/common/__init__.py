"""Helpers every stage may use: the data layout readers, atomic file writes, ONNX graph tools and
tool versions. They import the runtime (for the contract) and ``tritoncls.errors``, never a stage."""
