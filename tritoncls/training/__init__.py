"""The training stage: train, evaluate, predict (dynamic graph), and the data audits of ``analyze``
(``audit/``). The data readers and metrics live in :mod:`tritoncls.common`; models, checkpoints and export
in :mod:`tritoncls.modeling`."""
