"""What flowed through the hub, read back: event history and journeys, rejected requests, dead letters."""
