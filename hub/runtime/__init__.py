"""Runtime helpers: asyncio primitives and the egress guard; they import nothing from the hub."""
