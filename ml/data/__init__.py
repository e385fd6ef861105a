"""Data for the fraud use case: synthetic source, medallion steps, DVC versioning."""
