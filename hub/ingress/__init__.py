"""Webhook ingress: `POST /hooks/{tenant}/{connector}` and the operational endpoints."""
