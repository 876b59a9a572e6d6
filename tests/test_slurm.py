"""A batch through dask-jobqueue's SLURMCluster on a real single-node SLURM (scripts/start-slurm.sh): the
README's recipe, run as it is written there, writes the same files as a local run.

Skipped only where SLURM cannot run (no slurmctld installed, not started); CI starts it and sets
MAGICMASK_SLURM=1, which turns a skip into a failure."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import GOLDEN, leftovers, visible

README = Path(__file__).resolve().parent.parent / "README.md"
REQUIRED = os.environ.get("MAGICMASK_SLURM") == "1"


def slurm_problem() -> str | None:
    """Why SLURM cannot run a job here (None: it can)."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM is not installed (scripts/install-system.sh installs it with MAGICMASK_SLURM=1)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 10 s"
    if states.returncode != 0 or not re.search(r"^(idle|mixed)", states.stdout, re.M):
        return f"SLURM has no idle node (start it with scripts/start-slurm.sh): {(states.stderr or states.stdout).strip()}"
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        return "dask-jobqueue is not installed (pip install '.[dask]')"
    return None


@pytest.fixture(scope="module")
def slurm():
    problem = slurm_problem()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"MAGICMASK_SLURM=1 but {problem}")
        pytest.skip(problem)


def recipe() -> str:
    """The README's SLURM recipe: the python block after its ``slurm-recipe`` marker."""
    text = README.read_text()
    found = re.search(r"<!-- slurm-recipe.*?-->\s*```python\n(.*?)```", text, re.S)
    assert found, "README.md lost its SLURM recipe"
    return found.group(1)


def written(folder):
    return {name: (folder / name).read_bytes() for name in visible(folder) if name != "magicmask.json"}


def test_the_readmes_slurm_recipe_runs_a_batch_with_the_local_runs_bytes(slurm, tmp_path, monkeypatch, capsys):
    import magicmask

    takes = tmp_path / "takes"
    takes.mkdir()
    for name in ("walk", "walk10"):
        shutil.copy(GOLDEN / f"{name}.mp4", takes / f"{name}.mp4")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(recipe(), str(README), "exec"), namespace)
    results = namespace["results"]
    assert [result.status for result in results] == ["done", "done"]
    printed = capsys.readouterr().out
    assert f"done {Path('takes/walk.mp4')}" in printed
    local = magicmask.run_many(sorted(takes.glob("*.mp4")), tmp_path / "local", background="lighten", jobs=1)
    assert [result.status for result in local] == ["done", "done"]
    for name in ("walk", "walk10"):
        assert written(tmp_path / "masks" / name) == written(tmp_path / "local" / name), name
    assert leftovers(tmp_path) == []
