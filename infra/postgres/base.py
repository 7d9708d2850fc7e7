"""Django's PostgreSQL backend, with one change to how its psycopg pool checks connections.

With CONN_HEALTH_CHECKS, psycopg_pool checks each connection before handing it out. When the
check fails it tries the next idle connection, and from the second failure on it sleeps with
backoff (1 s, then 2 s, ...) before the next try. After a database restart every idle
connection is dead, so a request would sit through that backoff, and with a short pool timeout
(DATABASE_POOL_TIMEOUT_S) fail although the database is back. The check here, on finding one
dead connection, has the pool check all its idle ones at once (psycopg_pool's own `check()`,
which drops the dead and opens replacements), so the request waits for one new connection.

The `pool` property is Django 5.2's, except for the `check` argument.
"""

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def _check_pooled_connection(self, conn) -> None:
        from psycopg_pool import ConnectionPool

        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            # Dead connections come in batches (a restart, a failover): drop all of them now.
            pool = self._connection_pools.get(self.alias)
            if pool is not None:
                pool.check()
            raise

    @property
    def pool(self):
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None

        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            if pool_options is True:
                pool_options = {}
            from psycopg_pool import ConnectionPool

            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True
            enable_checks = self.settings_dict["CONN_HEALTH_CHECKS"]
            pool = ConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=self._check_pooled_connection if enable_checks else None,
                **pool_options,
            )
            self._connection_pools.setdefault(self.alias, pool)

        return self._connection_pools[self.alias]
