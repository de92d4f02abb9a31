"""Clients for a tritoncls ensemble served by Triton: gRPC and HTTP, plus file classification."""

from tritoncls.clients.base import LabelSetPrediction, Prediction, ServerUnavailable, TritonClient
from tritoncls.clients.chunked import ClassifyFileConfig, ClassifyStopped, classify_file
from tritoncls.clients.classify import CLIENTS, classify_texts, make_client
from tritoncls.clients.grpc_client import GrpcClient
from tritoncls.clients.http_client import HttpClient

__all__ = ["CLIENTS", "ClassifyFileConfig", "ClassifyStopped", "GrpcClient", "HttpClient", "LabelSetPrediction", "Prediction",
           "ServerUnavailable", "TritonClient", "classify_file", "classify_texts", "make_client"]
