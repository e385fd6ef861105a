"""Quality gates: data validation (Great Expectations) and model validation."""
