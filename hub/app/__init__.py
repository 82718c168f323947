"""The composition root: settings to connections to roles, started and stopped in one order."""
