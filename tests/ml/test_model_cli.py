"""`conveyor model …` reports user errors the one way (`core.cli.guarded`)."""

from __future__ import annotations

from typer.testing import CliRunner

from core import settings
from core.contract import Credential, EnvironmentOutputs, storage_layout
from ml.cli import app


def test_kubernetes_env_outside_its_pods_is_one_line(tmp_path):
    storage = "s3://conveyor-dev/env"
    outputs = EnvironmentOutputs(
        env="dev", platform="kubernetes", tracking_uri="http://127.0.0.1:1", serving_url="http://127.0.0.1:1",
        storage_uri=storage, storage=storage_layout(storage),
        credentials={"ci": Credential(username="ci", password="x", token="t")},
    )
    path = tmp_path / "dev.json"
    path.write_text(outputs.model_dump_json())
    result = CliRunner().invoke(app, ["status", "-t", "dev"],
                                env={settings.ENV_OUTPUTS.name: str(path), settings.STATE_DIR.name: ""})
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: env 'dev' runs on kubernetes")
    assert result.output.rstrip().endswith("run this in a job of that env (`conveyor bundle run`)")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
