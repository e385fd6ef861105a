"""`storage.models/<registered model>/champion.json`: one champion pointer per use case in an env."""

from __future__ import annotations

import pytest

from ml.errors import TaskError
from ml.registry import champion_pointer


def test_each_registered_model_has_its_own_pointer(tmp_path):
    fraud, diabetes = champion_pointer(tmp_path, "fraud-detector-dev"), champion_pointer(tmp_path, "diabetes-progression-dev")
    assert fraud == tmp_path / "fraud-detector-dev" / "champion.json"
    assert diabetes == tmp_path / "diabetes-progression-dev" / "champion.json"
    assert fraud != diabetes


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b"])
def test_a_name_that_is_not_one_directory_is_refused(tmp_path, name):
    with pytest.raises(TaskError, match="cannot name a directory"):
        champion_pointer(tmp_path, name)
