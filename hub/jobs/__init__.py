"""Bulk work as resumable jobs: replay, dead-letter redrive, retry of rejected requests."""
