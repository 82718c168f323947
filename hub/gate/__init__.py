"""Gate consumers: policy decisions, rate limits, dispatch and dead letters."""
