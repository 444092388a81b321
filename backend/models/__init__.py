"""API shapes of the cache routes (moving to backend/api/schemas)."""
