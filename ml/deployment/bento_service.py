"""Minimal BentoML service for one packaged champion (copied into each Bento's build context).

The env endpoint with rollouts is `ml.serving.service`; this Bento is the self-contained
artifact of one model version: `bentoml serve <service>:<version>` answers
`POST /predict` with `{"rows": [transaction, ...]}` → fraud probabilities.
Which model it serves is fixed at build time in `model.json` next to this file.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import bentoml
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fraud_features import FEATURES, build_features

_PIN = Path(__file__).with_name("model.json")
MODEL = json.loads(_PIN.read_text()) if _PIN.exists() else {"bentoml_model": os.environ.get("CONVEYOR_BENTO_MODEL", "")}


class Transaction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transaction_id: str | None = None
    timestamp: datetime
    amount: float = Field(ge=0)
    merchant_category: str
    card_present: bool
    home_lat: float = Field(ge=-90, le=90)
    home_lon: float = Field(ge=-180, le=180)
    txn_lat: float = Field(ge=-90, le=90)
    txn_lon: float = Field(ge=-180, le=180)


@bentoml.service(name=MODEL.get("service", "fraud_detector"), traffic={"timeout": 30})
class FraudDetector:
    model_ref = bentoml.models.BentoModel(MODEL["bentoml_model"])

    def __init__(self) -> None:
        # At serve time the class attribute is already the resolved `bentoml.Model`.
        stored = getattr(self.model_ref, "stored", self.model_ref)
        self.model = bentoml.sklearn.load_model(stored)
        self.version = stored.info.labels.get("model_version", "")
        self.threshold = float(MODEL.get("threshold", 0.5))

    @bentoml.api
    def predict(self, rows: list[Transaction]) -> list[dict]:
        raw = pd.DataFrame([r.model_dump() for r in rows])
        proba = self.model.predict_proba(build_features(raw)[FEATURES])[:, 1]
        return [
            {"transaction_id": r.transaction_id, "fraud_probability": float(p), "is_fraud": bool(p >= self.threshold),
             "model_version": self.version}
            for r, p in zip(rows, proba)
        ]
