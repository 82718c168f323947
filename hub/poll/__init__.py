"""Polling: the scheduler, the guarded HTTP client, and the stored state of poll sources."""
