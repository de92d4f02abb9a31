"""Every pytest fixture of the suite, and the hooks that keep ``-m "not slow"`` free of training.

Plain helpers (writers, processes, waits, the tiny model's training call) live in ``tests/support.py``;
the fixtures here wrap them. Sections: data; models trained once per session (slow); the toy keyword
set and its teacher; tiny exports and repositories written without training; served setups.

Markers: a test that uses a fixture in support.TRAINING_FIXTURES, or is marked ``triton`` (a server start
takes about 5 s), is marked ``slow`` at collection; a test not marked ``slow`` fails if it creates a Paddle
optimizer or saves a static graph (``forbid_training``). So ``-m "not slow"`` neither trains nor serves.
KUAKE-QIC is read from ../shared/data/kuake_qic; tests that need it skip when it is absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests import support
from tritoncls.cli_common import set_cpu_threads

set_cpu_threads()  # before anything imports paddle


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that uses a training fixture or starts tritonserver (marked ``triton``)."""
    for item in items:
        if support.must_be_slow(item):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Setup, call and teardown of a test not marked slow run under ``forbid_training``."""
    if item.get_closest_marker("slow") is not None:
        return (yield)
    with support.forbid_training(item.nodeid):
        return (yield)

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kuake_dir() -> Path:
    """KUAKE-QIC (train, dev, labels); skips the test when absent."""
    if not (support.KUAKE_DIR / "dev.txt").is_file():
        pytest.skip(f"KUAKE-QIC not found at {support.KUAKE_DIR} (set TRITONCLS_KUAKE_DIR or place ../shared "
                    "beside the repo)")
    return support.KUAKE_DIR


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The sample data set shipped with the package."""
    return support.DEMO_DIR


@pytest.fixture(scope="module")
def dev_texts(kuake_dir) -> list[str]:
    """The 1955 KUAKE-QIC dev texts."""
    from tritoncls.common import data

    return [e.text for e in data.read_examples(kuake_dir / "dev.txt", data.read_labels(kuake_dir / "label.txt"))]

@pytest.fixture()
def stand_ins(monkeypatch) -> type[support.StandIn]:
    """BatchSender's clients replaced by support.StandIn (no server); every server starts up."""
    from tritoncls.clients import classify

    support.StandIn.down, support.StandIn.hung, support.StandIn.made = set(), set(), []
    support.StandIn.label_sets = False
    monkeypatch.setattr(classify, "make_client", lambda url, protocol, **options: support.StandIn(url, **options))
    return support.StandIn

# ---------------------------------------------------------------------------------------------
# Models trained once per session (every test using these is slow)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory, demo_dir) -> Path:
    """The tiny architecture trained for three epochs on the demo data."""
    save = tmp_path_factory.mktemp("demo") / "checkpoint"
    support.train_tiny(demo_dir, save, epochs=3)
    return save


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory, demo_checkpoint) -> Path:
    """The export of demo_checkpoint."""
    return support.export_dir_for(demo_checkpoint, tmp_path_factory.mktemp("demo_export") / "export")


@pytest.fixture(scope="session")
def kuake_checkpoint(tmp_path_factory, kuake_dir) -> Path:
    """The tiny architecture trained for two epochs on KUAKE-QIC."""
    save = tmp_path_factory.mktemp("kuake") / "checkpoint"
    support.train_tiny(kuake_dir, save, epochs=2)
    return save


@pytest.fixture(scope="session")
def kuake_export(tmp_path_factory, kuake_checkpoint) -> Path:
    """The export of kuake_checkpoint."""
    return support.export_dir_for(kuake_checkpoint, tmp_path_factory.mktemp("kuake_export") / "export")

# ---------------------------------------------------------------------------------------------
# The toy keyword data set, and models trained on it
# ---------------------------------------------------------------------------------------------


@pytest.fixture()
def toy_dir(tmp_path) -> Path:
    """The toy set (40 train, 8 dev), a fresh copy a test may change."""
    return support.write_toy_dataset(tmp_path / "toy")


@pytest.fixture()
def noisy_toy_dir(tmp_path) -> Path:
    """The toy set with 120 training texts, five of them mislabeled (support.NOISY_TOY_FLIPPED), a clean dev
    set and unlabeled data.txt; a fresh copy a test may change."""
    return support.write_noisy_toy_dataset(tmp_path / "noisy_toy")


@pytest.fixture()
def noisy_ml_dir(tmp_path) -> Path:
    """The multi-label toy set (120 texts, labels food/sport/weather) with support.NOISY_ML_CORRUPTED."""
    return support.write_noisy_multi_label_dataset(tmp_path / "noisy_ml")


@pytest.fixture()
def noisy_tree_dir(tmp_path) -> Path:
    """The hierarchical toy set (150 texts) with support.NOISY_TREE_CORRUPTED."""
    return support.write_noisy_multi_label_dataset(tmp_path / "noisy_tree", count=150, hierarchical=True)


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> Path:
    """The toy set (40 train, 8 dev), shared by the session's fixtures: read it, never write to it."""
    return support.write_toy_dataset(tmp_path_factory.mktemp("toy_dataset") / "toy")


@pytest.fixture(scope="session")
def toy_dataset_64(tmp_path_factory) -> Path:
    """The toy set with 64 texts (48 train, 16 dev): a few more steps an epoch for the training-fault kills."""
    return support.write_toy_dataset(tmp_path_factory.mktemp("toy_dataset_64") / "toy", count=64, dev=16)


@pytest.fixture(scope="session")
def teacher_checkpoint(tmp_path_factory, toy_dataset) -> Path:
    """The tiny architecture (2 layers, 4 heads of 16, FFN 128) trained until it has learned the toy set (its
    logits differ by text, so what is distilled and compared from it is more than a constant)."""
    save = tmp_path_factory.mktemp("teacher") / "checkpoint"
    result = support.train_tiny(toy_dataset, save, epochs=6, batch_size=8, learning_rate=3e-3)
    assert result.best_accuracy == 1.0, result.history
    return save


@pytest.fixture(scope="session")
def keyword_checkpoint(tmp_path_factory) -> Path:
    """The tiny architecture trained until it has learned the toy set's keywords (160 texts, 6 epochs of 9 steps):
    what the interpretation and k-fold fine-tuning tests explain and fine-tune."""
    root = support.write_toy_dataset(tmp_path_factory.mktemp("keywords") / "toy", count=160, dev=16)
    save = root.parent / "checkpoint"
    result = support.train_tiny(root, save, epochs=6, batch_size=16, learning_rate=3e-3)
    assert result.best_accuracy == 1.0, result.history
    return save


@pytest.fixture(scope="session")
def multi_label_dataset(tmp_path_factory) -> Path:
    """The multi-label toy set (food/sport/weather, 140 train, 28 dev), shared by the session: never write to it."""
    return support.write_toy_multi_label_dataset(tmp_path_factory.mktemp("toy_ml_dataset") / "toy", count=168, dev=28)


@pytest.fixture(scope="session")
def multi_label_teacher_checkpoint(tmp_path_factory, multi_label_dataset) -> Path:
    """The tiny architecture trained as a multi-label model on multi_label_dataset until it has learned it (its
    task.json holds thresholds tuned on dev): the teacher of the multi-label pruning tests."""
    save = tmp_path_factory.mktemp("ml_teacher") / "checkpoint"
    result = support.train_tiny(multi_label_dataset, save, epochs=8, batch_size=8, learning_rate=3e-3,
                                task="multi_label")
    assert result.best_score >= 0.8, result.history  # macro-F1; 0.6 is the all-label guess
    return save


@pytest.fixture(scope="module")
def multi_label_pruned(tmp_path_factory, multi_label_dataset, multi_label_teacher_checkpoint):
    """``prune`` of the multi-label teacher at width 1/2 (one epoch): the output directory and the PruneResult."""
    from tritoncls.prune.prune import PruneConfig, prune

    out = tmp_path_factory.mktemp("ml_pruned") / "prune"
    result = prune(PruneConfig(
        dataset_dir=str(multi_label_dataset), checkpoint=str(multi_label_teacher_checkpoint), output=str(out),
        device="cpu", width_mult_list=["1/2"], batch_size=16, eval_batch_size=8, learning_rate=1e-3, epochs=1,
        logging_steps=1, save_steps=3, max_seq_length=32, importance_max_examples=24, latency_repeats=1,
    ))
    return out, result


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, toy_dataset, teacher_checkpoint):
    """``prune`` of the teacher at widths 1/2 and 3/4: the output directory and the PruneResult."""
    from tritoncls.prune.prune import PruneConfig, prune

    out = tmp_path_factory.mktemp("pruned") / "prune"
    result = prune(PruneConfig(
        dataset_dir=str(toy_dataset), checkpoint=str(teacher_checkpoint), output=str(out), device="cpu",
        width_mult_list=["1/2", "3/4"], batch_size=16, eval_batch_size=8,
        learning_rate=1e-3, epochs=1, logging_steps=1, save_steps=2, max_seq_length=32,
        importance_max_examples=24, latency_repeats=1,
    ))
    return out, result


@pytest.fixture()
def random_tiny_classifier(tmp_path):
    """A randomly initialised tiny classifier (eval mode, weights wide enough that logits vary by text) and its
    tokenizer over the toy texts (no training)."""
    import paddle

    from tritoncls import modeling

    paddle.seed(11)
    texts = [line.split("\t")[0] for line in support.toy_lines()]
    tokenizer = modeling.scratch_tokenizer(texts, tmp_path / "vocab")
    model = modeling.scratch_model(dict(support.TINY_ARCH, initializer_range=0.2), 2, len(tokenizer.vocab),
                                   tokenizer.pad_token_id)
    model.eval()
    return model, tokenizer


@pytest.fixture()
def tiny_model_and_batch(tmp_path):
    """A randomly initialised tiny classifier (eval mode) and the toy texts encoded for it (no training)."""
    import paddle

    from tritoncls import modeling
    from tritoncls.modeling.dynamic import encode

    paddle.seed(7)
    lines = support.toy_lines()
    texts = [line.split("\t")[0] for line in lines]
    tokenizer = modeling.scratch_tokenizer(texts, tmp_path / "vocab")
    model = modeling.scratch_model(dict(support.TINY_ARCH), 2, len(tokenizer.vocab), tokenizer.pad_token_id)
    model.eval()
    enc = encode(tokenizer, texts, 32)
    labels = np.array([i % 2 for i in range(len(texts))], dtype=np.int64)
    return model, enc, labels


@pytest.fixture(scope="module")
def good_checkpoint(toy_dataset_64, tmp_path_factory) -> Path:
    """One epoch trained in-process: the last good checkpoint every kill of the training faults must leave."""
    save_dir = tmp_path_factory.mktemp("good") / "ck"
    support.train_tiny(toy_dataset_64, save_dir, epochs=1, max_seq_length=32, batch_size=8,
                       arch_overrides=dict(support.TINY_ARCH))
    return save_dir

# ---------------------------------------------------------------------------------------------
# Tiny exports and repositories, written without training
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """The tiny export (support.write_tiny_export), shared by the session: read it, never write to it."""
    return support.write_tiny_export(tmp_path_factory.mktemp("tiny") / "export")


@pytest.fixture(scope="session")
def multi_label_export(tmp_path_factory) -> Path:
    """The tiny export as a multi-label model (support.write_multi_label_export), shared: never write to it."""
    return support.write_multi_label_export(tmp_path_factory.mktemp("tiny_ml") / "export")


@pytest.fixture(scope="session")
def hierarchical_export(tmp_path_factory) -> Path:
    """The tiny export as a hierarchical model (support.TINY_TREE_LABELS), shared: never write to it."""
    return support.write_multi_label_export(tmp_path_factory.mktemp("tiny_tree") / "export", hierarchical=True)


@pytest.fixture(scope="module", params=[False, True], ids=["multi_label", "hierarchical"])
def varied_label_sets(request, tmp_path_factory):
    """A tiny multi-label (then hierarchical) export whose label sets vary on its labelled texts
    (support.write_varied_multi_label_export), and those texts as bench reads them: (export, BenchTexts)."""
    from tritoncls.measure.texts import read_bench_texts

    root = tmp_path_factory.mktemp("varied_label_sets")
    lines = support.tiny_multi_label_lines(64, hierarchical=request.param)
    (root / "dev.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = read_bench_texts(root / "dev.txt")
    return support.write_varied_multi_label_export(root / "export", data.texts, request.param), data


@pytest.fixture()
def own_tiny_export(tmp_path) -> Path:
    """A tiny export of this test's own, to edit (``tiny_export`` is shared by the session)."""
    return support.write_tiny_export(tmp_path / "export")


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory, tiny_export) -> Path:
    """A python-backend repository of the tiny export, top k = 2."""
    from tritoncls.builder import BuildConfig, build_repository

    output = tmp_path_factory.mktemp("tiny_serve") / "repo"
    return build_repository(BuildConfig(model=str(tiny_export), output=str(output), top_k=2))

@pytest.fixture(scope="session")
def deploy_repos(tmp_path_factory) -> dict[str, Path]:
    """Repositories that ``deploy`` renders from, by name: ``cpu`` and ``gpu`` (the default profile: wordpiece
    tokenizer, python backend running ONNX Runtime) and ``plain`` (python tokenizer, onnxruntime backend),
    built from a tiny export with fixed package versions (support.DEPLOY_VERSIONS). Read them, never write."""
    from tritoncls.builder import BuildConfig, build_repository

    root = tmp_path_factory.mktemp("deploy_repos")
    export = support.write_deploy_export(root / "export")
    options = {"cpu": {}, "gpu": {"device": "gpu"}, "plain": {"tokenizer": "python", "backend": "onnxruntime"}}
    return {name: build_repository(BuildConfig(model=str(export), output=str(root / name), **extra))
            for name, extra in options.items()}

# ---------------------------------------------------------------------------------------------
# Served setups (the tests using them are marked triton)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Iterator[support.Hostile]:
    """A running server of an export with hostile labels, and its in-process reference."""
    support.raise_open_files_limit(4 * support.Hostile.CONNECTIONS)  # before the server starts: it inherits it
    setup = support.Hostile(tmp_path_factory.mktemp("hostile"))
    setup.server.start()
    yield setup
    setup.server.stop()


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> Iterator[support.Faults]:
    """The server-fault setup, its server started once for the module."""
    setup = support.Faults(tmp_path_factory.mktemp("faults"))
    setup.server.start()
    yield setup
    setup.server.stop()


@pytest.fixture()
def faults_server(faults):
    """The server of ``faults``, (re)started if an earlier test left it killed."""
    if not faults.server.is_running():
        faults.server.start()
    return faults.server


@pytest.fixture(scope="module")
def locked_server(tiny_repo, tmp_path_factory):
    """A running server of tiny_repo whose administrative APIs need support.ADMIN_KEY."""
    from tritoncls.server import TritonServer

    log_file = tmp_path_factory.mktemp("locked") / "tritonserver.log"
    with TritonServer(tiny_repo, admin_key=support.ADMIN_KEY, log_file=log_file) as running:
        yield running


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, tiny_export) -> Iterator[support.Replicas]:
    """Two servers of one repository of the tiny export (built once for the module), both started."""
    from tritoncls.builder import BuildConfig, build_repository

    root = tmp_path_factory.mktemp("replicas")
    repo = build_repository(BuildConfig(model=str(tiny_export), output=str(root / "repo")))
    setup = support.Replicas(root, tiny_export, repo)
    try:
        for server in setup.servers:
            server.start()
        yield setup
    finally:
        setup.stop()


@pytest.fixture()
def replica_servers(replicas):
    """The servers of ``replicas``, each (re)started if an earlier test left it killed."""
    for server in replicas.servers:
        if not server.is_running():
            server.start()
    return replicas.servers


@pytest.fixture(scope="module")
def dynamic_graph(kuake_checkpoint, kuake_export) -> support.DynamicGraph:
    """kuake_checkpoint in Paddle's dynamic graph."""
    return support.DynamicGraph(kuake_checkpoint, kuake_export)


@pytest.fixture(scope="module")
def reference(dynamic_graph, dev_texts) -> tuple[list[str], np.ndarray]:
    """The dynamic graph's labels and confidences on every KUAKE-QIC dev text."""
    return dynamic_graph.predict(dev_texts)


@pytest.fixture(scope="module")
def kuake_repo(kuake_export, tmp_path_factory) -> Path:
    """A repository of kuake_export, top k = 3."""
    from tritoncls.builder import BuildConfig, build_repository

    output = tmp_path_factory.mktemp("serve") / "repo"
    return build_repository(BuildConfig(model=str(kuake_export), output=str(output), top_k=3))


@pytest.fixture(scope="module")
def kuake_server(kuake_repo, tmp_path_factory):
    """A running server of kuake_repo."""
    from tritoncls.server import TritonServer

    with TritonServer(kuake_repo, log_file=tmp_path_factory.mktemp("logs") / "tritonserver.log") as running:
        yield running


@pytest.fixture(scope="module")
def soak_repo(kuake_export, tmp_path_factory) -> Path:
    """A repository of kuake_export with two model instances."""
    from tritoncls.builder import BuildConfig, build_repository

    output = tmp_path_factory.mktemp("soak") / "repo"
    return build_repository(BuildConfig(model=str(kuake_export), output=str(output), instances=2))


@pytest.fixture(scope="module")
def perf_analyzer_ready():
    """perf_analyzer's path; skips the test when it is not installed."""
    from tritoncls.errors import BenchmarkError
    from tritoncls.measure.perf_analyzer import PerfAnalyzer

    try:
        return PerfAnalyzer.find()
    except BenchmarkError as exc:
        pytest.skip(str(exc))

# ---------------------------------------------------------------------------------------------
# Multi-label and hierarchical models trained on the shipped demo sets (slow)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ml_dir() -> Path:
    """The shipped multi-label demo set (support messages with 0, 1 or 2 of 5 intents)."""
    return support.DEMO_ML_DIR


@pytest.fixture(scope="session")
def tree_dir() -> Path:
    """The shipped hierarchical demo set (the same texts, 7 paths of a two-level tree)."""
    return support.DEMO_TREE_DIR


@pytest.fixture(scope="session")
def ml_checkpoint(tmp_path_factory, ml_dir) -> Path:
    """The tiny architecture trained as a multi-label model on the demo set (thresholds tuned on its dev)."""
    save = tmp_path_factory.mktemp("ml_ckpt") / "checkpoint"
    support.train_tiny(ml_dir, save, epochs=12, task="multi_label", learning_rate=3e-3, batch_size=16)
    return save


@pytest.fixture(scope="session")
def ml_export(tmp_path_factory, ml_checkpoint) -> Path:
    return support.export_dir_for(ml_checkpoint, tmp_path_factory.mktemp("ml_export") / "export")


@pytest.fixture(scope="session")
def tree_checkpoint(tmp_path_factory, tree_dir) -> Path:
    """The tiny architecture trained as a hierarchical model on the demo set."""
    save = tmp_path_factory.mktemp("tree_ckpt") / "checkpoint"
    support.train_tiny(tree_dir, save, epochs=12, task="hierarchical", learning_rate=3e-3, batch_size=16)
    return save


@pytest.fixture(scope="session")
def tree_export(tmp_path_factory, tree_checkpoint) -> Path:
    return support.export_dir_for(tree_checkpoint, tmp_path_factory.mktemp("tree_export") / "export")


@pytest.fixture(scope="module", params=[("ml", "ensemble"), ("tree", "fused")], ids=lambda p: f"{p[0]}-{p[1]}")
def ml_served(request, tmp_path_factory):
    """(server, export, test texts): the multi-label demo model served as an ensemble, the hierarchical one fused."""
    from tritoncls.builder import BuildConfig, build_repository
    from tritoncls.server import TritonServer

    which, layout = request.param
    export = request.getfixturevalue(f"{which}_export")
    root = request.getfixturevalue(f"{which}_dir")
    texts = [line.split("\t")[0] for line in (root / "test.txt").read_text(encoding="utf-8").splitlines()]
    folder = tmp_path_factory.mktemp(f"{which}_{layout}")
    repo = build_repository(BuildConfig(model=str(export), output=str(folder / "repo"), layout=layout))
    with TritonServer(repo, log_file=folder / "tritonserver.log") as server:
        yield server, export, texts


@pytest.fixture(scope="module")
def ml_offline(ml_served):
    """The offline predictor's probabilities and label sets of ml_served's texts."""
    from tritoncls.common.offline import OfflineConfig, open_predictor
    from tritoncls.runtime import label_sets

    _, export, texts = ml_served
    result = open_predictor(OfflineConfig(model=str(export))).predict_probs(texts)
    return result.probs, label_sets(result.mask)


@pytest.fixture(scope="module")
def kuake_observed(kuake_export, tmp_path_factory):
    """kuake_export's repository (with the reference its export recorded), served and scraped."""
    from tritoncls.builder import BuildConfig, build_repository
    from tritoncls.runtime import metrics as m

    root = tmp_path_factory.mktemp("observed")
    repo = build_repository(BuildConfig(model=str(kuake_export), output=str(root / "repo")))
    assert (repo / m.REPOSITORY_REFERENCE_FILE).is_file(), "the export recorded no reference distribution"
    served = support.Served(repo, root)
    try:
        with support.Prometheus(root / "prometheus", [f"127.0.0.1:{served.metrics}"], support.POD_LABELS) as prometheus:
            yield repo, served, prometheus
    finally:
        served.stop()


@pytest.fixture(scope="module")
def hostile_repo(tmp_path_factory) -> Path:
    """A repository whose labels are support.HOSTILE_LABELS (quotes, braces, template syntax, backslash,
    Chinese, emoji, zero-width, shell), with a reference distribution of 11 700 dev texts."""
    from tritoncls.builder import BuildConfig, build_repository

    root = tmp_path_factory.mktemp("hostile_deploy")
    export = support.write_tiny_export(root / "export", labels=support.HOSTILE_LABELS)
    support.edit_manifest(export, lambda manifest: manifest["versions"].update(support.DEPLOY_VERSIONS))
    repo = build_repository(BuildConfig(model=str(export), output=str(root / "repo")))
    support.write_reference(repo, {label: 150 * (i + 1) for i, label in enumerate(support.HOSTILE_LABELS)})
    return repo


@pytest.fixture(scope="module")
def hostile_k8s(hostile_repo, tmp_path_factory) -> Path:
    from tritoncls.deploy import DeployConfig, deploy

    out = tmp_path_factory.mktemp("hostile_k8s") / "k8s"
    deploy(DeployConfig(model_repository=str(hostile_repo), output=str(out), target="k8s"))
    return out
