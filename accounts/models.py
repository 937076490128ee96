from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "sgp_"  # noqa: S105 (a label, not a secret)
# How long a new token lives, in days: the choices offered, and the default.
TOKEN_LIFETIME_CHOICES = (7, 30, 90, 180, 365)
TOKEN_DEFAULT_LIFETIME_DAYS = 90


class User(AbstractUser):
    """A person who signs in. Platform admins are staff users."""

    display_name = models.CharField(max_length=150, blank=True)
    # The user's object id in Microsoft Entra ID (the ID token's ``oid``):
    # Azure ML assigns a compute instance to it, so that only this person can
    # open the notebook. Filled at single sign-on; empty for local accounts.
    entra_object_id = models.CharField("Entra ID object id", max_length=36, blank=True)

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class PersonalAccessToken(models.Model):
    """A token for scripts and the mlflow client, stored only as its sha256."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    # The first characters, shown in lists so a user can tell tokens apart.
    prefix = models.CharField(max_length=12)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    def touch(self) -> None:
        """Record a use, at most once a minute to spare the database."""
        now = timezone.now()
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() > 60:
            self.last_used_at = now
            PersonalAccessToken.objects.filter(pk=self.pk).update(last_used_at=now)


class Notification(models.Model):
    """An in-app message to one user; also sent by e-mail when it is created."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    text = models.CharField(max_length=300)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "read_at"])]

    def __str__(self) -> str:
        return self.text
