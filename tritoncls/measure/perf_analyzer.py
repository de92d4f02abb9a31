"""perf_analyzer (from the ``tritonclient`` 2.51 wheel): input data from real texts, runs, CSV parsing.

perf_analyzer fills a request of batch ``b`` from ``b`` consecutive steps of the JSON input-data file
and starts each request at a multiple of ``b`` (``step = request * b % steps``). So the files written
here hold a multiple of ``b`` steps, and for the model step alone every group of ``b`` consecutive
texts is padded to the group's longest text: each request is then one file-order batch with dynamic
padding, the same work the in-process file-order baseline does.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tritoncls.errors import BenchmarkError

log = logging.getLogger(__name__)

#: perf_analyzer's CSV columns (microseconds, except the first two) -> our field names.
CSV_FIELDS = {
    "Concurrency": "concurrency",
    "Inferences/Second": "inferences_per_s",
    "Client Send": "client_send_us",
    "Network+Server Send/Recv": "network_us",
    "Server Queue": "server_queue_us",
    "Server Compute Input": "server_compute_input_us",
    "Server Compute Infer": "server_compute_infer_us",
    "Server Compute Output": "server_compute_output_us",
    "Client Recv": "client_recv_us",
    "p50 latency": "p50_us",
    "p90 latency": "p90_us",
    "p95 latency": "p95_us",
    "p99 latency": "p99_us",
    "Avg latency": "avg_us",  # not written by 2.51
}
LIBB64 = "libb64.so.0d"
CUDART = "libcudart.so.12"
#: Where ldconfig lives when /sbin is not on PATH (a non-root shell on Debian).
LDCONFIG_PATHS = ("/sbin/ldconfig", "/usr/sbin/ldconfig")


@dataclass(frozen=True)
class PerfPoint:
    """One perf_analyzer measurement: ``inferences_per_s`` counts texts (batch items), not requests."""

    model: str
    batch_size: int
    concurrency: int
    inferences_per_s: float
    p50_us: float
    p90_us: float
    p95_us: float
    p99_us: float
    avg_us: float | None = None
    server_queue_us: float = 0.0
    server_compute_input_us: float = 0.0
    server_compute_infer_us: float = 0.0
    server_compute_output_us: float = 0.0
    client_send_us: float = 0.0
    client_recv_us: float = 0.0
    network_us: float = 0.0

    @property
    def requests_per_s(self) -> float:
        return self.inferences_per_s / self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"requests_per_s": self.requests_per_s}


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------


def parse_csv(text: str, model: str, batch_size: int) -> list[PerfPoint]:
    """Rows of perf_analyzer's ``-f`` CSV (one per concurrency) as PerfPoints.

    Columns are found by their header names, so extra columns (``--collect-metrics``, newer
    versions) are ignored. Raises BenchmarkError when the file holds no measurement.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header_at = next((i for i, line in enumerate(lines) if line.startswith("Concurrency,")), None)
    if header_at is None:
        raise BenchmarkError(f"perf_analyzer CSV for {model!r} has no 'Concurrency,...' header; got: {text[:200]!r}")
    reader = csv.DictReader(io.StringIO("\n".join(lines[header_at:])))
    required = ("Concurrency", "Inferences/Second", "p50 latency", "p90 latency", "p95 latency", "p99 latency")
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise BenchmarkError(f"perf_analyzer CSV for {model!r} lacks columns {missing}; header: {reader.fieldnames}")
    points = []
    for row in reader:
        if not (row.get("Concurrency") or "").strip().isdigit():
            break  # a second table (server-side details) would start here
        values = {field: float(row[column]) for column, field in CSV_FIELDS.items() if row.get(column, "").strip()}
        values["concurrency"] = int(values["concurrency"])
        points.append(PerfPoint(model=model, batch_size=batch_size, **values))
    if not points:
        raise BenchmarkError(f"perf_analyzer CSV for {model!r} holds a header but no measurement rows.")
    return points


# ---------------------------------------------------------------------------------------------
# Input data
# ---------------------------------------------------------------------------------------------


def usable_steps(count: int, batch_size: int) -> int:
    """The largest multiple of ``batch_size`` not above ``count`` (at least one batch)."""
    if count < batch_size:
        raise BenchmarkError(f"{count} texts are fewer than one request of {batch_size}; use a larger --input file "
                             f"or smaller batch sizes.")
    return count - count % batch_size


def text_input_data(texts: Sequence[str], input_name: str, batch_size: int = 1) -> dict[str, Any]:
    """perf_analyzer JSON input data for an ensemble's BYTES input: one text per step, shape [1]."""
    steps = usable_steps(len(texts), batch_size)
    return {"data": [{input_name: {"content": [text], "shape": [1]}} for text in texts[:steps]]}


def equivalent_width(lengths: Sequence[int], batch_size: int) -> int:
    """Mean width of file-order batches of ``batch_size`` padded to their longest text (rounded up)."""
    groups = [max(lengths[i:i + batch_size]) for i in range(0, len(lengths), batch_size)]
    return int(-(-sum(groups) // len(groups)))


def token_input_data(rows: Sequence[Sequence[int]], input_names: Sequence[str], batch_size: int,
                     pad_id: int, pad_type_id: int = 0) -> dict[str, Any]:
    """perf_analyzer JSON input data for the model step: ``input_ids`` and ``token_type_ids`` per step.

    At batch 1 each step is one text at its own length. perf_analyzer can only batch steps of one
    shape, so at a larger batch every text is padded (or cut) to :func:`equivalent_width`: each
    request then costs what an average file-order batch with dynamic padding costs.
    """
    if len(input_names) != 2:
        raise BenchmarkError(f"the model step must have 2 inputs (input_ids, token_type_ids), got {list(input_names)}")
    ids_name, types_name = input_names
    steps = usable_steps(len(rows), batch_size)
    rows = rows[:steps]
    width = equivalent_width([len(r) for r in rows], batch_size) if batch_size > 1 else None
    data = []
    for row in rows:
        real = len(row) if width is None else min(len(row), width)
        pad = 0 if width is None else width - real
        ids = list(row[:real]) + [pad_id] * pad
        types = [0] * real + [pad_type_id] * pad
        data.append({ids_name: {"content": ids, "shape": [len(ids)]},
                     types_name: {"content": types, "shape": [len(types)]}})
    return {"data": data}


def write_input_data(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The binary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerfAnalyzer:
    """The perf_analyzer binary and the environment it needs to start."""

    binary: Path
    env: dict[str, str]
    cpus: tuple[int, ...] = ()  # run perf_analyzer on these CPUs only (off the server's); () = anywhere

    @classmethod
    def find(cls) -> PerfAnalyzer:
        """The venv's perf_analyzer (tritonclient wheel), with libcudart on LD_LIBRARY_PATH; checks libb64.

        The one discovery of perf_analyzer: ``tritoncls bench`` and ``tritoncls perf-analyzer`` both use it.
        """
        binary = find_binary()
        check_libb64()
        env = dict(os.environ)
        cudart = cuda_runtime_lib_dir()
        if cudart is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(cudart), env.get("LD_LIBRARY_PATH")) if p)
        elif not system_has(CUDART, env.get("LD_LIBRARY_PATH", "")):
            raise BenchmarkError(f"{CUDART} is missing, and perf_analyzer needs it even on CPU. Install it into this "
                                 "environment with `pip install nvidia-cuda-runtime-cu12` (or `pip install -e "
                                 "'.[bench]'`); its lib folder is then put on LD_LIBRARY_PATH for perf_analyzer.")
        return cls(binary, env)

    def _pin(self) -> None:
        """In the child before exec: keep perf_analyzer on ``cpus``."""
        os.sched_setaffinity(0, self.cpus)

    def command(self, model: str, url: str, input_data: Path, batch_size: int, concurrency: int,
                csv_path: Path, requests_per_window: int, max_trials: int, stability_pct: int) -> list[str]:
        """Count windows: each measurement window waits for ``requests_per_window`` responses, so one
        setting serves fast and slow models alike."""
        return [str(self.binary), "-m", model, "-u", url, "-i", "grpc", "--async",
                "-b", str(batch_size), "--concurrency-range", f"{concurrency}:{concurrency}",
                "--input-data", str(input_data), "--measurement-mode", "count_windows",
                "--measurement-request-count", str(requests_per_window),
                "--max-trials", str(max_trials), "--stability-percentage", str(stability_pct),
                "-f", str(csv_path)]

    def measure(self, model: str, url: str, input_data: Path, batch_size: int, concurrency: int,
                workdir: Path, requests_per_window: int = 8, max_trials: int = 6, stability_pct: int = 20,
                timeout_s: float = 300.0) -> PerfPoint:
        """One perf_analyzer run at one batch size and concurrency; its CSV parsed."""
        csv_path = workdir / f"{model}_b{batch_size}_c{concurrency}.csv"
        csv_path.unlink(missing_ok=True)
        command = self.command(model, url, input_data, batch_size, concurrency, csv_path, requests_per_window,
                               max_trials, stability_pct)
        log.debug("running %s", " ".join(command))
        try:
            done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout_s,
                                  preexec_fn=self._pin if self.cpus else None)
        except subprocess.TimeoutExpired as exc:
            raise BenchmarkError(f"perf_analyzer on {model!r} (b={batch_size}, c={concurrency}) ran over {timeout_s:.0f} s") from exc
        (workdir / f"{csv_path.stem}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        if not csv_path.is_file():
            tail = "\n  ".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            raise BenchmarkError(f"perf_analyzer on {model!r} (b={batch_size}, c={concurrency}) failed with exit code "
                                 f"{done.returncode}:\n  {tail}")
        if done.returncode != 0:
            log.warning("perf_analyzer on %s (b=%d, c=%d) exited %d but wrote its CSV (unstable measurement?)",
                        model, batch_size, concurrency, done.returncode)
        return parse_csv(csv_path.read_text(encoding="utf-8"), model, batch_size)[0]


def find_binary() -> Path:
    """perf_analyzer beside this Python (the tritonclient wheel puts it in the environment's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "perf_analyzer"
    candidates = [beside, shutil.which("perf_analyzer")]
    binary = next((Path(c) for c in candidates if c and Path(c).is_file()), None)
    if binary is None:
        raise BenchmarkError(f"perf_analyzer not found at {beside} or on PATH; install the pinned "
                             "`tritonclient[grpc,http]==2.51.0` wheel into this environment (`pip install -c "
                             "constraints.txt 'tritonclient[grpc,http]'`), which puts perf_analyzer in its bin/.")
    return binary


def _ldconfig_listing() -> str | None:
    """``ldconfig -p`` (the libraries the loader knows); None when there is no ldconfig to ask."""
    tool = shutil.which("ldconfig") or next((p for p in LDCONFIG_PATHS if Path(p).is_file()), None)
    if tool is None:
        return None
    try:
        return subprocess.run([tool, "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None


def system_has(library: str, library_path: str = "") -> bool:
    """Whether the loader can find ``library``: in a ``library_path`` folder or in ldconfig's cache.

    True when there is no ldconfig to ask: perf_analyzer then reports a missing library itself.
    """
    if any((Path(folder) / library).exists() for folder in library_path.split(os.pathsep) if folder):
        return True
    listing = _ldconfig_listing()
    return listing is None or library in listing


def check_libb64() -> None:
    """perf_analyzer 2.51 links libb64.so.0d; say how to install it when it is missing."""
    if not system_has(LIBB64, os.environ.get("LD_LIBRARY_PATH", "")):
        raise BenchmarkError(f"{LIBB64} is missing, and perf_analyzer needs it. Install it with "
                             f"`apt-get install libb64-0d` (or run `bash scripts/system_deps.sh` as root).")


def cuda_runtime_lib_dir() -> Path | None:
    """``nvidia/cuda_runtime/lib`` of pip's ``nvidia-cuda-runtime-cu12`` (perf_analyzer dlopens libcudart)."""
    try:
        spec = importlib.util.find_spec("nvidia.cuda_runtime")
    except ModuleNotFoundError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        lib = Path(location) / "lib"
        if lib.is_dir():
            return lib
    return None
