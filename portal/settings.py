"""Settings for Stagegate, read from environment variables only.

Every variable is listed, with its default, in the README's configuration
table. Secrets may also be given as ``<NAME>_FILE`` (a path whose content is the
value), which is how Docker and Kubernetes secrets arrive.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def secret(name: str, default: str | None = None) -> str | None:
    """Read a secret from NAME, or from the file named by NAME_FILE."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


DEBUG = env.bool("DJANGO_DEBUG", default=False)
VAR_DIR = Path(env.str("STAGEGATE_VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = secret("DJANGO_SECRET_KEY") or ""
# The key `make run` keeps in the var directory, so that `manage.py` works in
# that checkout without exporting anything.
if not SECRET_KEY and (VAR_DIR / "secret_key").is_file():
    SECRET_KEY = (VAR_DIR / "secret_key").read_text().strip()
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "insecure-development-key-only-used-with-DJANGO_DEBUG"  # noqa: S105
    else:
        raise environ.ImproperlyConfigured(
            "Set DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE (make run creates var/secret_key)."
        )

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_results",
    "django_celery_beat",
    "axes",
    # The core, bottom to top (docs/architecture.md).
    "audit",
    "accounts",
    "projects",
    "governance",
    "compute",
    # The stages, in order.
    "charter",
    "datasets",
    "workspaces",
    "experiments",
    "deployments",
    # The Django project and the site-level pages.
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "web.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
# Embedded default: SQLite in WAL mode with IMMEDIATE transactions, so that
# concurrent writers (web, worker, beat) queue up instead of failing.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
_db_password = secret("DATABASE_PASSWORD")
if _db_password:
    DATABASES["default"]["PASSWORD"] = _db_password

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login attempts: after AXES_FAILURE_LIMIT failures for one username from one
# address, that pair is locked out for AXES_COOLOFF_MINUTES; after
# AXES_ADDRESS_FAILURE_LIMIT failures from one address, whatever the usernames,
# the address is. Never an account as such (accounts/lockout.py).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_ADDRESS_FAILURE_LIMIT = env.int("AXES_ADDRESS_FAILURE_LIMIT", default=20)
AXES_COOLOFF_TIME = env.int("AXES_COOLOFF_MINUTES", default=15) / 60
AXES_LOCKOUT_PARAMETERS = [["ip_address", "username"], "ip_address"]
AXES_HANDLER = "accounts.lockout.AddressAndPairHandler"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
PROXY_COUNT = env.int("DJANGO_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "web.http.client_ip"

# Optional single sign-on with Microsoft Entra ID (OpenID Connect).
OIDC_ENABLED = bool(os.environ.get("OIDC_RP_CLIENT_ID"))
if OIDC_ENABLED:
    INSTALLED_APPS.append("mozilla_django_oidc")
    AUTHENTICATION_BACKENDS.append("accounts.oidc.EntraIDBackend")
    OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID")
    OIDC_RP_CLIENT_SECRET = secret("OIDC_RP_CLIENT_SECRET") or ""
    _tenant = env.str("OIDC_TENANT_ID", default="common")
    _authority = f"https://login.microsoftonline.com/{_tenant}"
    OIDC_OP_AUTHORIZATION_ENDPOINT = env.str(
        "OIDC_OP_AUTHORIZATION_ENDPOINT", default=f"{_authority}/oauth2/v2.0/authorize"
    )
    OIDC_OP_TOKEN_ENDPOINT = env.str(
        "OIDC_OP_TOKEN_ENDPOINT", default=f"{_authority}/oauth2/v2.0/token"
    )
    OIDC_OP_USER_ENDPOINT = env.str(
        "OIDC_OP_USER_ENDPOINT", default="https://graph.microsoft.com/oidc/userinfo"
    )
    OIDC_OP_JWKS_ENDPOINT = env.str(
        "OIDC_OP_JWKS_ENDPOINT", default=f"{_authority}/discovery/v2.0/keys"
    )
    OIDC_RP_SIGN_ALGO = "RS256"
    OIDC_RP_SCOPES = "openid email profile"

# --- HTTPS-only settings (production behind a TLS proxy) -------------------
HTTPS = env.bool("DJANGO_HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
# Health probes come over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("STATIC_MANIFEST", default=True)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = secret("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="stagegate@localhost")

# --- REST API -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's parsers, refusing deep JSON and text PostgreSQL cannot store.
    "DEFAULT_PARSER_CLASSES": [
        "web.parsers.JSONParser",
        "web.parsers.FormParser",
        "web.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "web.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stagegate API",
    "DESCRIPTION": "Take a data science project from charter to production.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Distinct names for choice sets that share a field name across apps.
    "ENUM_NAME_OVERRIDES": {
        "ApprovalStateEnum": "governance.models.ApprovalState",
        "WorkspaceStateEnum": "workspaces.models.WorkspaceState",
        "WorkspaceKindEnum": "workspaces.models.WorkspaceKind",
        "DataSourceKindEnum": "datasets.models.SourceKind",
        "ValidationRuleKindEnum": "datasets.models.RuleKind",
        "IngestionStatusEnum": "datasets.models.IngestionStatus",
        "SplitStatusEnum": "datasets.models.SplitStatus",
        "ConnectionStatusEnum": "datasets.models.ConnectionStatus",
        "DeploymentTargetEnum": "deployments.gate_models.Target",
        "DeploymentRolloutEnum": "deployments.gate_models.Rollout",
        "DeploymentRequestStateEnum": "deployments.gate_models.RequestState",
        "ValidationStateEnum": "deployments.gate_models.ValidationState",
        "JobCodeKindEnum": "experiments.jobs.KINDS",
    },
}

# --- Celery ---------------------------------------------------------------
# Embedded default: kombu's filesystem transport (no server; it supports the
# fanout exchange that worker pings need). Production: Redis.
CELERY_BROKER_URL = secret("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "control", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "workspaces.tasks.*": {"queue": "provisioning"},
    "experiments.tasks.*": {"queue": "training"},
    "deployments.gate_tasks.*": {"queue": "training"},
    "datasets.tasks.*": {"queue": "data"},
    "deployments.serving_tasks.*": {"queue": "provisioning"},
    "deployments.drift_tasks.*": {"queue": "data"},
    "deployments.batch_tasks.*": {"queue": "training"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# How long /healthz waits for a worker to answer a ping, in seconds.
HEALTHZ_PING_TIMEOUT = env.float("HEALTHZ_PING_TIMEOUT", default=1.0)
# How long /healthz waits for a tiny task to go through every queue and back.
HEALTHZ_ROUNDTRIP_TIMEOUT = env.float("HEALTHZ_ROUNDTRIP_TIMEOUT", default=5.0)

# Leases on background work (background/leases.py): a claimed row is held
# this long past its last heartbeat (a beat every third of it); a row sent to
# the broker and not claimed within the grace lost its message. The recovery
# beat sends such work again, up to BACKGROUND_MAX_ATTEMPTS, then fails it.
BACKGROUND_LEASE_SECONDS = env.float("BACKGROUND_LEASE_SECONDS", default=120.0)
BACKGROUND_DISPATCH_GRACE_SECONDS = env.float("BACKGROUND_DISPATCH_GRACE_SECONDS", default=600.0)
BACKGROUND_MAX_ATTEMPTS = env.int("BACKGROUND_MAX_ATTEMPTS", default=6)
BACKGROUND_RECOVER_SECONDS = env.float("BACKGROUND_RECOVER_SECONDS", default=60.0)
# A staging object no live ingestion names and unchanged this long is removed.
DATA_STAGING_ORPHAN_SECONDS = env.float("DATA_STAGING_ORPHAN_SECONDS", default=2 * 3600.0)
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "background-leases-recover": {
        "task": "portal.leases_recover",
        "schedule": BACKGROUND_RECOVER_SECONDS,
        "options": {"expires": BACKGROUND_RECOVER_SECONDS},
    },
}

# PostgreSQL role the web and worker processes connect as. When set, the audit
# migration revokes UPDATE, DELETE and TRUNCATE on the audit table from it.
AUDIT_APP_DB_ROLE = env.str("AUDIT_APP_DB_ROLE", default="")
# Keys the database does not hold (docs/audit.md): the events' MAC keys, newest
# first, and the Ed25519 key that signs checkpoints; without them, generated
# once under VAR_DIR. Checkpoints go to a file or an Azure append blob.
AUDIT_MAC_KEYS = [k.strip() for k in (secret("AUDIT_MAC_KEY") or "").split(",") if k.strip()]
AUDIT_SIGNING_KEY_FILE = Path(
    env.str("AUDIT_SIGNING_KEY_FILE", default=str(VAR_DIR / "audit_signing_key"))
)
AUDIT_PREVIOUS_PUBLIC_KEYS = env.list("AUDIT_PREVIOUS_PUBLIC_KEYS", default=[])
AUDIT_CHECKPOINT_URL = env.str(
    "AUDIT_CHECKPOINT_URL", default=f"file://{VAR_DIR / 'audit-checkpoints.jsonl'}"
)
AUDIT_CHECKPOINT_CONNECTION_STRING = secret("AUDIT_CHECKPOINT_CONNECTION_STRING", "") or ""
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "audit-checkpoint": {
        "task": "audit.tasks.audit_checkpoint",
        "schedule": env.float("AUDIT_CHECKPOINT_SECONDS", default=3600.0),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Base address used in links inside e-mails.
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")

# --- Data stage (datasets/) -------------------------------------------------
# Where snapshots live, as an fsspec URL: a local folder by default, or Azure
# Blob / ADLS ("az://container/prefix", "abfs://...") with the connection
# string in STAGEGATE_STORAGE_CONNECTION_STRING (or _FILE).
STAGEGATE_STORAGE_URL = env.str("STAGEGATE_STORAGE_URL", default=f"file://{VAR_DIR / 'storage'}")
STAGEGATE_STORAGE_OPTIONS: dict[str, str] = {}
_storage_connection = secret("STAGEGATE_STORAGE_CONNECTION_STRING")
if _storage_connection:
    STAGEGATE_STORAGE_OPTIONS["connection_string"] = _storage_connection
# Largest upload or pull accepted, in bytes (2 GB by default).
DATA_UPLOAD_MAX_BYTES = env.int("DATA_UPLOAD_MAX_BYTES", default=2 * 1024**3)
# Keys that encrypt data source credentials (MultiFernet): comma-separated,
# newest first; `manage.py rotate_data_secrets` re-encrypts with the first.
# Without them: derived from the development secret key under DEBUG; in the
# embedded setup (SQLite, one machine) generated once into var/, as `make run`
# does for the secret key; anywhere else the portal refuses to start, since
# processes on several machines must share one set of keys.
_field_keys = secret("FIELD_ENCRYPTION_KEYS") or ""
if not _field_keys:
    if DEBUG:
        import base64
        import hashlib

        _field_keys = base64.urlsafe_b64encode(
            hashlib.sha256(f"field-encryption:{SECRET_KEY}".encode()).digest()
        ).decode()
    elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        _key_file = VAR_DIR / "field_encryption_key"
        if not _key_file.exists():
            from cryptography.fernet import Fernet

            VAR_DIR.mkdir(parents=True, exist_ok=True)
            try:
                _fd = os.open(_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process (web, worker, beat) made it first
            else:
                with os.fdopen(_fd, "w") as _f:
                    _f.write(Fernet.generate_key().decode())
        for _ in range(50):  # the other process may still be writing it
            _field_keys = _key_file.read_text().strip()
            if _field_keys:
                break
            import time

            time.sleep(0.1)
    else:
        raise environ.ImproperlyConfigured(
            "Set FIELD_ENCRYPTION_KEYS or FIELD_ENCRYPTION_KEYS_FILE: the keys that encrypt "
            "data source credentials, the same in every web and worker process."
        )
FIELD_ENCRYPTION_KEYS = [k.strip() for k in _field_keys.split(",") if k.strip()]
# Outbound connections from data sources may not reach link-local or private
# addresses, except these networks (CIDR, comma-separated), nor this machine
# except on these ports: the embedded default (SQLite, one machine) and DEBUG
# allow PostgreSQL's port, so the demo can pull from a local PostgreSQL.
_embedded = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
DATA_EGRESS_ALLOWED_CIDRS = env.list("DATA_EGRESS_ALLOWED_CIDRS", default=[])
DATA_EGRESS_LOOPBACK_PORTS = env.list(
    "DATA_EGRESS_LOOPBACK_PORTS", cast=int, default=[5432] if (DEBUG or _embedded) else []
)
# The shortest interval between two scheduled pulls of a source, in minutes.
DATA_REFRESH_MIN_MINUTES = env.int("DATA_REFRESH_MIN_MINUTES", default=60)
# Registering data before the charter is signed off is allowed and marked
# exploratory; true makes registration wait for the sign-off.
STAGEGATE_DATA_REQUIRES_SIGNOFF = env.bool("STAGEGATE_DATA_REQUIRES_SIGNOFF", default=False)
# Bytes parsed per batch while ingesting, and the most rows a profile reads.
DATA_BATCH_BYTES = env.int("DATA_BATCH_BYTES", default=16 * 1024**2)
DATA_PROFILE_MAX_ROWS = env.int("DATA_PROFILE_MAX_ROWS", default=5_000_000)
# Extra CA bundle trusted by HTTPS sources (an internal CA); blank: the system's.
DATA_HTTPS_CA_FILE = env.str("DATA_HTTPS_CA_FILE", default="")
# A pull from a source ends after this many seconds in all (below the data
# task's time limit), and a read that gets no byte for the stall timeout fails.
STAGEGATE_PULL_READ_TIMEOUT = env.float("STAGEGATE_PULL_READ_TIMEOUT", default=2700.0)
STAGEGATE_PULL_STALL_TIMEOUT = env.float("STAGEGATE_PULL_STALL_TIMEOUT", default=60.0)
# plotly.js for the profile charts, served from the plotly package itself.
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "datasets.static_finders.PlotlyFinder",
]

# --- Cloud providers (cloud/) ---
# Where workspaces, clusters and jobs run: "local" (this machine) or "azure"
# (Azure ML). See docs/cloud.md.
CLOUD_PROVIDER = env.str("CLOUD_PROVIDER", default="local")
# Local provider: one folder per workspace, cluster and job.
LOCAL_PROVIDER_ROOT = Path(env.str("LOCAL_PROVIDER_ROOT", default=str(VAR_DIR / "workspaces")))
# Folders whose files a local workspace or job may be given to read (dataset
# snapshots); anything else is refused. Default: the data stage's local storage.
LOCAL_PROVIDER_DATA_ROOTS = [
    Path(p) for p in env.list("LOCAL_PROVIDER_DATA_ROOTS", default=[str(VAR_DIR / "storage")])
]
# Seconds a local workspace's create/start waits for Jupyter to answer before
# returning "creating" (the caller then polls).
LOCAL_PROVIDER_READY_TIMEOUT = env.float("LOCAL_PROVIDER_READY_TIMEOUT", default=30.0)
# Azure ML provider: the workspace, and a service principal (or, without
# client id and secret, azure-identity's default credential chain).
AZURE_SUBSCRIPTION_ID = env.str("AZURE_SUBSCRIPTION_ID", default="")
AZURE_RESOURCE_GROUP = env.str("AZURE_RESOURCE_GROUP", default="")
AZURE_ML_WORKSPACE = env.str("AZURE_ML_WORKSPACE", default="")
AZURE_TENANT_ID = secret("AZURE_TENANT_ID", "") or ""
AZURE_CLIENT_ID = secret("AZURE_CLIENT_ID", "") or ""
AZURE_CLIENT_SECRET = secret("AZURE_CLIENT_SECRET", "") or ""
# Environment that command jobs run in.
AZURE_JOB_ENVIRONMENT = env.str(
    "AZURE_JOB_ENVIRONMENT",
    default="azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
)
# Optional nightly stop of every compute instance (cron, e.g. "0 22 * * *"),
# on top of each instance's idle shutdown.
AZURE_CI_STOP_CRON = env.str("AZURE_CI_STOP_CRON", default="")
AZURE_CI_SCHEDULE_TIME_ZONE = env.str("AZURE_CI_SCHEDULE_TIME_ZONE", default="UTC")
# The Azure ML workspace's IP rules (public IPv4, at most 200), applied only by
# an admin (AzureProvider.workspace_network_apply); never per compute instance.
AZURE_WORKSPACE_ALLOWED_IPS = env.list("AZURE_WORKSPACE_ALLOWED_IPS", default=[])
# This installation's part of every Azure resource name (3-6 lowercase letters
# and digits, starting with a letter); required, and never to be changed.
AZURE_NAME_SALT = env.str("AZURE_NAME_SALT", default="")
# Tries per Azure call on throttling (429) and server errors (5xx).
AZURE_MAX_ATTEMPTS = env.int("AZURE_MAX_ATTEMPTS", default=5)
# Seconds one HTTP request to Azure may take to connect / to answer.
AZURE_CONNECT_TIMEOUT = env.float("AZURE_CONNECT_TIMEOUT", default=10.0)
AZURE_READ_TIMEOUT = env.float("AZURE_READ_TIMEOUT", default=60.0)

# --- Workspaces and compute (workspaces/) ---
# Quotas a project (and a user, across projects) gets until an admin changes
# them: modest, so that a GPU or a third running notebook needs an admin.
WORKSPACES_DEFAULT_QUOTAS = {
    "project": {
        "max_vcpus": env.int("WORKSPACES_PROJECT_MAX_VCPUS", default=8),
        "max_gpus": env.int("WORKSPACES_PROJECT_MAX_GPUS", default=0),
        "max_running": env.int("WORKSPACES_PROJECT_MAX_RUNNING", default=2),
    },
    "user": {
        "max_vcpus": env.int("WORKSPACES_USER_MAX_VCPUS", default=16),
        "max_gpus": env.int("WORKSPACES_USER_MAX_GPUS", default=0),
        "max_running": env.int("WORKSPACES_USER_MAX_RUNNING", default=4),
    },
}
# Budget thresholds (percent of the month's budget) announced to the leads.
WORKSPACES_BUDGET_ALERT_PERCENTS = (80, 100)
# Provider calls: seconds between status checks, how many checks before
# giving up, tries on transient errors and the first backoff (doubling, jittered).
WORKSPACES_POLL_SECONDS = env.float("WORKSPACES_POLL_SECONDS", default=3.0)
WORKSPACES_MAX_POLLS = env.int("WORKSPACES_MAX_POLLS", default=400)
WORKSPACES_MAX_ERRORS = env.int("WORKSPACES_MAX_ERRORS", default=6)
WORKSPACES_RETRY_BASE_SECONDS = env.float("WORKSPACES_RETRY_BASE_SECONDS", default=5.0)
# --- Training jobs (experiments/jobs.py) ---
# Seconds between two looks at a running job (its state, log and metrics),
# by the worker and by the job's page.
JOBS_POLL_SECONDS = env.float("JOBS_POLL_SECONDS", default=1.0)
# A job's code (an uploaded archive, a repository): at most this many files
# and bytes unpacked, and an upload of at most this many bytes.
JOBS_CODE_MAX_FILES = env.int("JOBS_CODE_MAX_FILES", default=2000)
JOBS_CODE_MAX_BYTES = env.int("JOBS_CODE_MAX_BYTES", default=50 * 1024**2)
JOBS_CODE_MAX_UPLOAD_BYTES = env.int("JOBS_CODE_MAX_UPLOAD_BYTES", default=20 * 1024**2)
# Folders whose git repositories jobs may use by path or file:// URL
# (comma-separated); none by default: only https repositories, through the
# data sources' egress guard.
JOBS_GIT_LOCAL_ROOTS = env.list("JOBS_GIT_LOCAL_ROOTS", default=[])
# A job's requirements: at most this many lines; the local provider builds
# one virtualenv per set (under the var dir), with pip given these extra
# arguments (e.g. "--index-url=https://mirror/simple" or
# "--no-index --find-links=/srv/wheels"), for at most this many seconds.
JOBS_MAX_REQUIREMENTS = env.int("JOBS_MAX_REQUIREMENTS", default=50)
LOCAL_ENVS_ROOT = Path(env.str("LOCAL_ENVS_ROOT", default=str(VAR_DIR / "envs")))
LOCAL_ENVS_PIP_ARGS = env.str("LOCAL_ENVS_PIP_ARGS", default="")
LOCAL_ENVS_BUILD_TIMEOUT = env.float("LOCAL_ENVS_BUILD_TIMEOUT", default=200.0)
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "workspaces-idle-shutdown": {
        "task": "workspaces.tasks.workspaces_idle_shutdown",
        "schedule": env.float("WORKSPACES_IDLE_CHECK_SECONDS", default=60.0),
    },
    "workspaces-meter-usage": {
        "task": "workspaces.tasks.workspaces_meter_usage",
        "schedule": env.float("WORKSPACES_METER_SECONDS", default=300.0),
    },
    "deployments-validations-recover": {
        "task": "deployments.gate_tasks.validations_recover",
        "schedule": 60.0,
    },
}
# A task whose worker died (kill -9, lost machine) is delivered again after
# this many seconds (Redis); provisioning tasks are idempotent, so a shorter
# timeout only costs duplicate runs that find nothing to do.
if "visibility_timeout" in CELERY_BROKER_TRANSPORT_OPTIONS:
    _visibility = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = _visibility
    CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"] = max(1, min(10, _visibility // 10))
    CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_throttle"] = 1 if _visibility < 600 else 10

# Real-time serving (docs/serving.md): how long a new scoring process may take
# to become healthy, and how often the health check (and canary promotion) runs.
SERVING_READY_TIMEOUT = env.float("SERVING_READY_TIMEOUT", default=180.0)
# Azure ML's managed online deployments take many minutes to start.
AZURE_SERVING_READY_TIMEOUT = env.float("AZURE_SERVING_READY_TIMEOUT", default=1800.0)
# A start task waits this long for the deployment to become healthy, then
# hands over to a watch task that looks again every SERVING_WATCH_SECONDS.
SERVING_START_SLICE_SECONDS = env.float("SERVING_START_SLICE_SECONDS", default=60.0)
SERVING_WATCH_SECONDS = env.float("SERVING_WATCH_SECONDS", default=15.0)
SERVING_HEALTH_SECONDS = env.float("SERVING_HEALTH_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "serving-health-check": {
        "task": "deployments.serving_tasks.serving_health_check",
        "schedule": SERVING_HEALTH_SECONDS,
        "options": {"expires": SERVING_HEALTH_SECONDS},
    },
}

# Drift monitoring (docs/serving.md, Drift): how often running deployments are
# checked, and how much of the end of each sample log one check reads.
DRIFT_CHECK_SECONDS = env.float("DRIFT_CHECK_SECONDS", default=3600.0)
DRIFT_WINDOW_BYTES = env.int("DRIFT_WINDOW_BYTES", default=64 * 1024 * 1024)
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "drift-check": {
        "task": "deployments.drift_tasks.drift_check_all",
        "schedule": DRIFT_CHECK_SECONDS,
        "options": {"expires": DRIFT_CHECK_SECONDS},
    },
}

# Batch scoring (docs/serving.md, Batch scoring): how often the beat looks for
# scheduled scorings that are due.
BATCH_SCHEDULE_SECONDS = env.float("BATCH_SCHEDULE_SECONDS", default=300.0)
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "batch-scorings-schedule": {
        "task": "deployments.batch_tasks.batch_scorings_schedule",
        "schedule": BATCH_SCHEDULE_SECONDS,
        "options": {"expires": BATCH_SCHEDULE_SECONDS},
    },
}
