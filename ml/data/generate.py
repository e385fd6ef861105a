"""The fraud use case's generator under its old name — kept for the serving side until it reads the use-case contract."""

from usecases.fraud.generate import CATEGORY_NAMES, RAW_COLUMNS, generate_transactions

__all__ = ["CATEGORY_NAMES", "RAW_COLUMNS", "generate_transactions"]
