"""The admin API: `/v1/` on its own port, every route behind an API key with scopes and a tenant."""
