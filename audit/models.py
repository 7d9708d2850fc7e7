"""The audit log: who changed what, when, from where, with the fields before and after.

A row is a copy, not a reference: the object's type, id and text are strings, the team a plain
number, and the actor a foreign key without a database constraint (SET_NULL, plus a copy of
the name), so deleting any of them leaves the trail intact. Nothing updates or deletes rows
(the admin is read-only).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Source(models.TextChoices):
    ADMIN = "admin", "Admin"
    PORTAL = "portal", "Portal"
    API = "api", "API"
    CLI = "cli", "Command line"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    actor_repr = models.CharField("actor", max_length=200, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SYSTEM)
    ip = models.GenericIPAddressField(null=True, blank=True)
    # create, update, delete, or what a service did: rotate, revoke, limits_set, role_change.
    action = models.CharField(max_length=32, db_index=True)
    object_type = models.CharField(max_length=100, db_index=True)  # "tenants.apikey"
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField("object", max_length=200, blank=True)
    team_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # {field: [before, after]}, secrets masked (audit/capture.py).
    changes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]
        verbose_name = "audit event"

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_repr or self.object_id}"
