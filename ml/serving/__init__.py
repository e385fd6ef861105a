"""Real-time serving: the BentoML endpoint, its endpoint config, rollouts and the inference table."""
