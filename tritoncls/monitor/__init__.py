"""``tritoncls monitor``: compare what a served model sees with what it saw on its dev data, and say whether
its traffic drifted.

A served ensemble counts its traffic (``tritoncls/runtime/metrics.py``: predicted labels, top confidence, token
lengths, truncations, refusals) on Triton's metrics port; its export recorded the same facts on dev data
(``reference.json``). This package reads the live counters from the port (cumulative since the server started,
or since a ``--baseline`` snapshot) or from Prometheus (``increase`` over a window), computes each
distribution's population stability index, a chi-square test of label shares, the low-confidence and truncated
rates, and judges: exit 0 no drift, 3 drift, 4 not enough traffic (1: an error).

- :mod:`.config`: options, thresholds, exit statuses, :class:`MonitorError`
- :mod:`.counts`: Prometheus text -> one model's counts, histograms back into bins, snapshots
- :mod:`.sources`: the metrics port and the Prometheus query API (HTTP)
- :mod:`.compare`: PSI, chi-square, rates, the verdict
- :mod:`.report`: the table, monitor.json, monitor.md, monitor.png
- :mod:`.monitor`: :func:`~tritoncls.monitor.monitor.monitor`, the one action

The package imports nothing here, so `tritoncls monitor --help` reads only :mod:`.config`.
"""
