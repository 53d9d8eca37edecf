"""A checkpoint path that is a folder says so (``models verify DIR``), not "does not exist"."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarlab.errors import MissingWeightsError
from avatarlab.weights import check_file, read_state_dict


@pytest.mark.parametrize("reader", [check_file, read_state_dict])
def test_folder_instead_of_checkpoint_file(tmp_path: Path, reader: object) -> None:
    with pytest.raises(MissingWeightsError) as empty:
        reader(tmp_path)  # type: ignore[operator]
    assert str(empty.value) == f"{tmp_path} is a folder: give the checkpoint file inside it"
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "wav2lip.pth").write_bytes(b"x")
    with pytest.raises(MissingWeightsError, match=r"inside it such as .*wav2lip\.pth$"):
        reader(tmp_path)  # type: ignore[operator]
    with pytest.raises(MissingWeightsError, match="does not exist"):
        reader(tmp_path / "missing.pth")  # type: ignore[operator]
