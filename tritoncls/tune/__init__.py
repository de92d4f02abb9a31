"""``tritoncls tune``: search the serving configuration on the user's own texts and machine, against a
p99 latency budget (builds candidate repositories, serves each with tritonserver, drives it with
perf_analyzer). :mod:`.search` is the pure search logic; :mod:`.tune` runs it for real."""
