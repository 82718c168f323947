"""The operator console: server-rendered pages on the admin port, over the admin API's service layer."""
