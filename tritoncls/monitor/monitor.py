"""``tritoncls monitor``'s one action: read the live counts, compare them with the reference, judge."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from tritoncls.monitor.compare import MonitorReport, compare
from tritoncls.monitor.config import MonitorConfig, MonitorError
from tritoncls.monitor.counts import counts_of, load_snapshot, save_snapshot, since
from tritoncls.monitor.sources import query_prometheus, scrape_metrics_port
from tritoncls.runtime.contract import REPOSITORY_MARKER
from tritoncls.runtime.metrics import REFERENCE_FILE, REPOSITORY_REFERENCE_FILE, Reference

log = logging.getLogger(__name__)


def reference_path(path: str | Path) -> Path:
    """The reference file itself, or the one in an export folder (reference.json) or a model repository
    (tritoncls_reference.json)."""
    path = Path(path)
    if path.is_dir():
        for name in (REFERENCE_FILE, REPOSITORY_REFERENCE_FILE):
            if (path / name).is_file():
                return path / name
        raise MonitorError(f"{path}: holds neither {REFERENCE_FILE} (an export's) nor {REPOSITORY_REFERENCE_FILE} (a "
                           f"model repository's). Export with `tritoncls export --reference_data DEV.txt` and build "
                           f"the repository from that export, or pass the reference file as --reference.")
    if not path.exists():
        raise MonitorError(f"{path}: not found. Pass --reference: a reference.json, the export folder holding it, or "
                           f"the model repository built from that export.")
    return path


def monitor(config: MonitorConfig) -> MonitorReport:
    """Compare a served model's counts (metrics port or Prometheus) with its reference; the report's verdict
    says whether it drifted. With ``save_snapshot`` the counts read are written for a later ``baseline``."""
    path = reference_path(config.reference)
    reference = Reference.load(path)
    built = _metrics_record(path)
    if config.name is None and built.get("model"):
        config = replace(config, name=str(built["model"]))  # the repository says which model it serves
    where = config.prometheus or config.metrics_url
    if config.prometheus:
        scrape = query_prometheus(config.prometheus, config.window, config.name, config.timeout_s)
        window = f"the last {config.window}"
    else:
        scrape = scrape_metrics_port(config.metrics_url, config.name, config.timeout_s)
        window = "server start"
    notes = _threshold_note(reference, built)
    counts = counts_of(scrape.series, scrape.model, reference, where)
    snapshot = load_snapshot(config.baseline) if config.baseline else None  # before --save_snapshot replaces it
    if config.save_snapshot:
        save_snapshot(counts, config.save_snapshot, where)
        log.info("Wrote the counts to %s (pass it as --baseline later)", config.save_snapshot)
    if snapshot is not None:
        counts, restarted = since(counts, snapshot, where)
        window = f"server start (restarted after the baseline of {snapshot.taken_at})" if restarted else (
            f"the baseline of {snapshot.taken_at}")
        notes += [restarted] if restarted else []
    return compare(reference, counts, config, reference_path=str(path), since=window, notes=notes)


def _metrics_record(reference: Path) -> dict[str, Any]:
    """The ``metrics`` record of the repository whose reference this is ({} for an export's or a lone file)."""
    marker = reference.parent / REPOSITORY_MARKER
    if reference.name != REPOSITORY_REFERENCE_FILE or not marker.is_file():
        return {}
    try:
        record = json.loads(marker.read_text(encoding="utf-8")).get("metrics")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return {}
    return record if isinstance(record, dict) else {}


def _threshold_note(reference: Reference, built: dict[str, Any]) -> list[str]:
    """A note when the repository counts low confidence below another threshold than the reference did."""
    served = built.get("low_confidence")
    if not isinstance(served, int | float) or abs(served - reference.low_confidence_threshold) < 1e-9:
        return []
    return [f"the repository counts low confidence below {served:g} (build-repo --low_confidence), the reference "
            f"below {reference.low_confidence_threshold:g}: the two low-confidence rates are not comparable"]
