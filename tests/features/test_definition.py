"""The `feature_tables` resource kind: validated like every kind, deployed into env storage."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import re

import pytest
import yaml
from pydantic import ValidationError

from bundles.resources import KINDS
from bundles.resources.feature_tables import FeatureTable
from core.feature_tables import definition_key, load_definition
from core.storage import Blobs

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((ROOT / "resources" / "features.yml").read_text())["resources"]["feature_tables"]


def _entry(**change):
    entry = {**SHIPPED["customer_aggregates"], **change}
    entry["features"] = {**entry["features"], **change.get("features", {})}
    return entry


def test_the_shipped_table_validates_and_the_kind_is_registered():
    assert "feature_tables" in KINDS.names()
    table = FeatureTable.model_validate(SHIPPED["customer_aggregates"])
    assert table.source.use_case == "fraud" and set(table.features) == {"txn_count_24h", "mean_amount_30d"}


@pytest.mark.parametrize(("change", "message"), [
    ({"entity_key": "customer"}, "entity_key: unknown column 'customer' of use case 'fraud' (did you mean 'customer_id'?)"),
    ({"timestamp": "amount"}, "timestamp 'amount' is a float column, not a datetime"),
    ({"features": {"m": {"aggregation": "mean", "column": "amont", "window": "1d", "default": 0}}}, "unknown column 'amont'"),
    ({"features": {"m": {"aggregation": "mean", "column": "merchant_category", "window": "1d", "default": 0}}}, "aggregates numbers"),
    ({"features": {"m": {"aggregation": "median", "column": "amount", "window": "1d", "default": 0}}}, "Input should be"),
    ({"features": {"m": {"aggregation": "count", "window": "soon", "default": 0}}}, "not a duration"),
    ({"ttl": "forever"}, "not a duration"),
    ({"schedule": "hourly"}, "bad cron 'hourly': expected 5 fields"),
    ({"schedule": "99 * * * *"}, "bad cron '99 * * * *': not a valid cron expression"),  # jobs' check: one check
    ({"source": {"use_case": "frad"}}, "unknown use case 'frad'"),
    ({"cache": True}, "Extra inputs are not permitted"),
])
def test_bad_declarations_are_refused_with_a_message_naming_the_key(change, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        FeatureTable.model_validate(_entry(**change))


def test_bundle_validate_reports_a_bad_column_at_the_entry(tmp_path):
    """Through the real loader: the diagnostic names resources/features.yml and the key."""
    import shutil

    from bundles.loader import load_bundle

    for name in ("bundle.yml", "resources", "usecases"):  # the columns are the bundle's own
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    path = tmp_path / "resources" / "features.yml"
    path.write_text(path.read_text().replace("entity_key: customer_id", "entity_key: client_id"))
    bundle, diags = load_bundle(tmp_path, target="dev")
    assert bundle is None
    text = "\n".join(d.render() for d in diags)
    assert "resources/features.yml" in text and "unknown column 'client_id'" in text



def test_columns_are_checked_against_the_validated_bundle_not_the_working_directory(tmp_path):
    """A bundle whose own use case calls the key `client_id` is valid, wherever validate runs from
    (this checkout's fraud use case has no such column)."""
    import shutil

    from bundles.loader import load_bundle

    for name in ("bundle.yml", "resources", "usecases"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    for rel in ("resources/features.yml", "usecases/fraud/usecase.yml"):
        path = tmp_path / rel
        path.write_text(path.read_text().replace("customer_id", "client_id"))
    _, diags = load_bundle(tmp_path, target="dev")
    assert not [d.render() for d in diags if d.severity == "error" and "feature_tables" in d.render()]

def test_deploy_writes_the_definition_the_refresh_and_serving_read_and_destroy_removes_it(tmp_path):
    from bundles.envstore import DeploymentStore
    from core.contract import Credential, EnvironmentOutputs, storage_layout

    uri = (tmp_path / "storage").as_uri()
    outputs = EnvironmentOutputs(env="dev", platform="local", tracking_uri="http://x", serving_url="http://x", storage_uri=uri,
                                 storage=storage_layout(uri), credentials={"ci": Credential(username="ci", password="p", token="t")})
    kind = KINDS.get("feature_tables")
    ctx = SimpleNamespace(outputs=outputs, store=DeploymentStore(outputs, "conveyor.dev"), deployment_id="conveyor.dev",
                          bundle=SimpleNamespace(name="conveyor", target="dev", mode="production"))
    spec = FeatureTable.model_validate(SHIPPED["customer_aggregates"]).model_dump(mode="json")
    action = SimpleNamespace(key="feature_tables.customer_aggregates", name="customer_aggregates", spec=spec)
    rec = kind.put(ctx, action, None)
    rec.spec = spec
    stored = load_definition("customer_aggregates", Blobs(uri).read_text(definition_key("customer_aggregates")))
    assert stored.entity_key == "customer_id" and stored.features["mean_amount_30d"].default == 60.0
    assert kind.exists(ctx, rec)
    assert kind.summary(ctx, rec)["features"] == ["mean_amount_30d", "txn_count_24h"]
    kind.delete(ctx, rec)
    assert not kind.exists(ctx, rec) and not Blobs(uri).exists(definition_key("customer_aggregates"))


def test_the_fraud_fallbacks_are_the_tables_declared_defaults():
    from usecases.fraud.features import NO_HISTORY

    table = FeatureTable.model_validate(SHIPPED["customer_aggregates"])
    assert NO_HISTORY == table.defaults()


def test_plan_checks_the_refresh_job_and_its_schedule():
    from bundles.errors import BundleError

    kind = KINDS.get("feature_tables")
    spec = FeatureTable.model_validate(SHIPPED["customer_aggregates"]).model_dump(mode="json")

    def ctx(jobs):
        return SimpleNamespace(bundle=SimpleNamespace(root=ROOT, resources=SimpleNamespace(jobs=jobs)))

    hourly = {"feature_refresh_job": SimpleNamespace(schedule=SimpleNamespace(cron="0 * * * *"))}
    kind.check(ctx(hourly), "feature_tables.customer_aggregates", spec)
    with pytest.raises(BundleError, match="refresh_job 'feature_refresh_job' is not a job of this bundle"):
        kind.check(ctx({}), "feature_tables.customer_aggregates", spec)
    daily = {"feature_refresh_job": SimpleNamespace(schedule=SimpleNamespace(cron="0 2 * * *"))}
    with pytest.raises(BundleError, match="is not its refresh job's"):
        kind.check(ctx(daily), "feature_tables.customer_aggregates", spec)
