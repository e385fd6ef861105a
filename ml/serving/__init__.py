"""Real-time serving: the BentoML endpoint, its endpoint config, rollout strategies, the inference
table, and the `update_endpoint` task that rolls the endpoint to the champion (see README.md)."""
