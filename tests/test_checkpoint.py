"""ProgressFile: the atomic JSON progress file under the SQL and DynamoDB jobs' checkpoints."""

from __future__ import annotations

from pathlib import Path

from fieldcrypt.checkpoint import ProgressFile


def test_round_trip_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    """write() then read() gives the document back; a second write replaces it; no .tmp remains."""
    progress = ProgressFile(tmp_path / "new-dir", "users.ssn.reencrypt.0of1")
    progress.write({"last": [1]})
    progress.write({"last": [2], "done": False})
    assert progress.read() == {"last": [2], "done": False}
    assert [p.name for p in (tmp_path / "new-dir").iterdir()] == ["users.ssn.reencrypt.0of1.json"]


def test_unreadable_or_missing_documents_mean_start_over(tmp_path: Path) -> None:
    """A missing file, broken JSON or a JSON value that is not an object all read as None."""
    progress = ProgressFile(tmp_path, "job")
    assert progress.read() is None
    (tmp_path / "job.json").write_text("{half a docu")
    assert progress.read() is None
    (tmp_path / "job.json").write_text("[1, 2]")
    assert progress.read() is None
    progress.clear()
    progress.clear()  # clearing twice is harmless
    assert not list(tmp_path.iterdir())


def test_names_are_made_safe_and_no_directory_keeps_nothing(tmp_path: Path) -> None:
    """Separators and spaces in a job name become '_'; without a directory nothing is written."""
    assert ProgressFile(tmp_path, "dynamodb-t/1.a b.3-of-8").path == tmp_path / "dynamodb-t_1.a_b.3-of-8.json"
    nowhere = ProgressFile(None, "job")
    nowhere.write({"last": [1]})
    assert (nowhere.path, nowhere.read()) == (None, None)
