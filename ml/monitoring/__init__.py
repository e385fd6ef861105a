"""Monitoring of served models: drift, prediction drift, quality, champion vs challenger, retraining trigger."""
