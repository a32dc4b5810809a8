"""A deployment's live traffic (its server's /metrics, as rates over time) and a bounded load test."""
