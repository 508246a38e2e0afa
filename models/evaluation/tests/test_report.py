import subprocess

from evaluation.report import source_state


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_source_state_ignores_the_tools_own_outputs(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    clean = source_state(tmp_path)
    assert clean["dirty"] is False and len(clean["commit"]) >= 7
    (tmp_path / "docs" / "results.md").write_text("regenerated\n")
    assert source_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert source_state(tmp_path)["dirty"] is True
