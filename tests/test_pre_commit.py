"""The pre-commit hook, for real: `pre-commit` installs this repository's hook (.pre-commit-hooks.yaml)
into a throwaway git repository, and a commit with a bad spec fails with its located line.

Offline: the hook's repository is a local git clone of this project, and its environment reuses the
packages already installed here (virtualenv's system site packages, pip with no index)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("pre_commit", reason="pre-commit is a test dependency: pip install -e '.[test]'")
pytest.importorskip("hatchling", reason="the hook's environment builds dtrain with hatchling, offline")

GOOD = """\
name: good
data:
  source: {Synthetic: {shape: [8], num_classes: 3, size: 64}}
  val: {fraction: 0.25}
  batch_size: 16
model:
  input: [8]
  layers:
    - Linear: {out_features: 3}
optimizer: {Adam: {lr: 1.0e-3}}
"""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, timeout=120)


def _hook_repository(tmp_path: Path) -> tuple[Path, str]:
    """This project as a git repository of its own (a CI copy may have no .git): the hook's `repo:`."""
    project = tmp_path / "dtrain"
    for part in ("declarative", "schemas", "pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / part)
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    assert _git(project, "commit", "-qm", "dtrain").returncode == 0
    return project, _git(project, "rev-parse", "HEAD").stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="pre-commit needs git")
def test_a_commit_with_a_bad_spec_fails_with_its_located_line_and_good_specs_pass(tmp_path):
    project, rev = _hook_repository(tmp_path)
    repo = tmp_path / "work"
    (repo / "specs").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {project}\n    rev: {rev}\n    hooks:\n      - id: dtrain-validate\n"
        "        files: ^specs/.*\\.ya?ml$\n")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "VIRTUALENV_SYSTEM_SITE_PACKAGES": "true",  # torch and the rest, as installed here
           "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0",  # nothing fetched; pip reads 0 here as "no isolation"
           "DTRAIN_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("PYTHONPATH", None)  # the hook runs the dtrain it installed
    pre_commit = [sys.executable, "-m", "pre_commit"]
    assert subprocess.run([*pre_commit, "install"], cwd=repo, env=env, capture_output=True, timeout=120).returncode == 0

    (repo / "specs" / "good.yaml").write_text(GOOD)
    (repo / "specs" / "also_good.yaml").write_text(GOOD.replace("name: good", "name: also-good"))
    _git(repo, "add", "-A")
    commit = subprocess.run(["git", "commit", "-qm", "good specs"], cwd=repo, env={**env, **_author()},
                            capture_output=True, text=True, timeout=600)
    assert commit.returncode == 0, commit.stdout + commit.stderr
    assert "dtrain validate" in commit.stdout + commit.stderr and "Passed" in commit.stdout + commit.stderr

    (repo / "specs" / "bad.yaml").write_text(GOOD.replace("out_features: 3", "out_feature: 3"))
    _git(repo, "add", "-A")
    commit = subprocess.run(["git", "commit", "-qm", "a bad spec"], cwd=repo, env={**env, **_author()},
                            capture_output=True, text=True, timeout=600)
    output = commit.stdout + commit.stderr
    assert commit.returncode != 0, output
    assert "specs/bad.yaml:9:16: Linear has no argument 'out_feature'" in output
    assert "good.yaml" not in output.replace("specs/bad.yaml", "")  # only the bad spec is reported
    assert _git(repo, "log", "--oneline").stdout.count("\n") == 1  # the bad commit did not happen


def _author() -> dict[str, str]:
    return {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
