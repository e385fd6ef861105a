"""The request/response contract of `POST /predict`.

The schema lives with the service code (a schema change is a code change that moves
through CI like any other); models must accept these columns plus the on-demand
features in `features.py`. Strict types so a quoted number is a 4xx, not a silent cast.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Transaction(BaseModel):
    """One card transaction to score. `transaction_id` doubles as the request id."""

    model_config = ConfigDict(strict=True, extra="forbid")

    transaction_id: str | None = Field(default=None, max_length=128, description="request id; generated if absent")
    customer_id: str = Field(min_length=1, max_length=128, description="sticky routing key for A/B splits")
    amount: float = Field(ge=0, le=1_000_000)
    merchant_category: str = Field(min_length=1, max_length=64)
    hour: int = Field(ge=0, le=23, description="local hour of the transaction")
    card_present: bool
    customer_age: int = Field(ge=14, le=120)
    home_lat: float = Field(ge=-90, le=90)
    home_lon: float = Field(ge=-180, le=180)
    tx_lat: float = Field(ge=-90, le=90)
    tx_lon: float = Field(ge=-180, le=180)


RAW_FEATURES = [n for n in Transaction.model_fields if n not in ("transaction_id", "customer_id")]


class Prediction(BaseModel):
    transaction_id: str
    is_fraud: bool
    fraud_probability: float
    model_version: str
    served_by: str
