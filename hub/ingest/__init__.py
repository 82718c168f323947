"""The ingest core: the one way events enter the bus, shared by webhooks and polls."""
