"""Django's PostgreSQL backend with a pool health check that survives a database restart."""
