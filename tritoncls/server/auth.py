"""Locked-down serving: the admin key that unlocks Triton's administrative APIs, and the loopback policy."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tritoncls.errors import ServeError
from tritoncls.runtime.contract import ADMIN_KEY_HEADER, RESTRICTED_APIS

log = logging.getLogger(__name__)

#: Triton's administrative APIs (HTTP) and protocols (gRPC) that a key locks; inference, metadata,
#: model-config and health stay open. Names as Triton 2.51's ``--http-restricted-api`` accepts them.
DEFAULT_KEY_HEADER = ADMIN_KEY_HEADER
#: Triton 2.51 checks a gRPC restricted protocol's key under this prefix plus the header name.
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"
API_KEY_ENV = "TRITONCLS_API_KEY"
MIN_KEY_CHARS = 16
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_HEADER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_KEY_VALUE = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: valid in an HTTP header and in gRPC metadata





@dataclass(frozen=True, repr=False)
class AdminKey:
    """The header and key that unlock Triton's administrative APIs (:data:`RESTRICTED_APIS`).

    Inference, metadata and health need no key. The key is never shown by ``repr``.
    """

    key: str
    header: str = DEFAULT_KEY_HEADER

    def __post_init__(self) -> None:
        if not _HEADER_NAME.match(self.header) or self.header.startswith("grpc-"):
            raise ServeError(f"API key header {self.header!r} is not usable: write lowercase letters, digits and "
                             f"dashes (gRPC metadata keys are lowercase; 'grpc-' is reserved), e.g. {DEFAULT_KEY_HEADER}.")
        if not _KEY_VALUE.match(self.key) or len(self.key) < MIN_KEY_CHARS:
            raise ServeError(f"the API key must be at least {MIN_KEY_CHARS} visible ASCII characters without spaces "
                             "(make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`).")

    def __repr__(self) -> str:
        return f"AdminKey(header={self.header!r}, key=<{len(self.key)} characters>)"

    def server_args(self) -> list[str]:
        """tritonserver 2.51's ``<apis>:<header>=<key>`` flags for HTTP and gRPC."""
        setting = f"{','.join(RESTRICTED_APIS)}:{self.header}={self.key}"
        return [f"--http-restricted-api={setting}", f"--grpc-restricted-protocol={setting}"]

    def headers(self, protocol: str = "http") -> dict[str, str]:
        """What a client sends to call a restricted API (``tritonclient``'s ``headers=``).

        Triton reads the gRPC key from the metadata key ``triton-grpc-protocol-<header>``.
        """
        if protocol not in ("http", "grpc"):
            raise ServeError(f"protocol {protocol!r}: use 'http' or 'grpc'.")
        return {(GRPC_HEADER_PREFIX if protocol == "grpc" else "") + self.header: self.key}

    @classmethod
    def from_file(cls, path: str | Path, header: str = DEFAULT_KEY_HEADER) -> AdminKey:
        """The key in ``path`` (its first line); warns when other users may read the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ServeError(f"{path}: cannot read the API key file ({exc.strerror}).") from exc
        if path.stat().st_mode & 0o077:
            log.warning("%s: the API key file can be read by other users; `chmod 600 %s`", path, path)
        lines = text.strip().splitlines()
        if not lines:
            raise ServeError(f"{path}: the API key file is empty.")
        return cls(lines[0].strip(), header)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def open_admin_warning(host: str, admin_key: AdminKey | None) -> str | None:
    """The warning for a server bound beyond loopback with its administrative APIs open; None if neither."""
    if admin_key is not None or is_loopback(host):
        return None
    return (f"tritonserver binds {host} without an API key: anyone who reaches it can register shared memory, "
            f"read statistics, change trace and log settings and list the repository ({', '.join(RESTRICTED_APIS)}). "
            f"Set a key ({API_KEY_ENV} or --api_key_file) to lock them; inference and health stay open.")


def configured_admin_key(key_file: str | Path | None, header: str = DEFAULT_KEY_HEADER,
                         environ: Mapping[str, str] | None = None) -> AdminKey | None:
    """The key in ``key_file``, else in ``$TRITONCLS_API_KEY``; None when neither is set (the file wins)."""
    environ = os.environ if environ is None else environ
    if key_file:
        if environ.get(API_KEY_ENV):
            log.warning("both an API key file and %s are set; using the file", API_KEY_ENV)
        return AdminKey.from_file(key_file, header)
    key = environ.get(API_KEY_ENV, "").strip()
    return AdminKey(key, header) if key else None
