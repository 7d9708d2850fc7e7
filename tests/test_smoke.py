from tenants.keys import KEY_PREFIX, hash_secret
from tenants.models import ApiKey


def test_issued_key_is_stored_only_as_hash(team, issue_key):
    secret = issue_key(team)
    stored = ApiKey.objects.get()
    assert secret.startswith(KEY_PREFIX)
    assert stored.key_hash == hash_secret(secret)
    assert secret not in {stored.key_hash, stored.prefix, stored.name}
    assert secret.startswith(stored.prefix)
