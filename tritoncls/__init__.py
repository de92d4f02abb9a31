"""tritoncls: fine-tune ERNIE/BERT text classifiers with PaddlePaddle and serve them on Triton."""

__version__ = "0.1.0"
