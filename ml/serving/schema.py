"""The request/response contract of `POST /predict`.

The schema lives with the service code (a schema change is a code change that moves
through CI like any other); models must accept these columns after `ml.features.build_features`
(which computes the on-demand `compute_distance` feature). Strict types so a quoted number is a 4xx, not a silent cast.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Transaction(BaseModel):
    """One raw card transaction to score (the bronze schema of `ml.data.generate`, minus the label).

    `transaction_id` doubles as the request id (generated if absent); `customer_id` is the
    sticky routing key for A/B and canary splits.
    """

    model_config = ConfigDict(strict=True, extra="forbid")

    transaction_id: str | None = Field(default=None, min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=128)
    timestamp: datetime = Field(strict=False, description="ISO 8601 time of the transaction")
    amount: float = Field(ge=0, le=10_000_000)
    merchant_category: str = Field(min_length=1, max_length=64)
    card_present: bool
    home_lat: float = Field(ge=-90, le=90)
    home_lon: float = Field(ge=-180, le=180)
    txn_lat: float = Field(ge=-90, le=90)
    txn_lon: float = Field(ge=-180, le=180)

    @field_validator("timestamp")
    @classmethod
    def _wall_clock(cls, value: datetime) -> datetime:
        """Features use the local wall-clock time (hour, weekday), as in training data; an offset
        is dropped so rows with and without one can be scored in the same batch."""
        return value.replace(tzinfo=None)


class Prediction(BaseModel):
    transaction_id: str
    is_fraud: bool
    fraud_probability: float
    model_version: str
    served_by: str
