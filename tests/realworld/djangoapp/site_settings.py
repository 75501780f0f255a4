"""Django settings of the matrix's Django workload (a site nobody here would write differently).

The database comes from the environment the workload sets: the cluster's port,
the database name, and the application_name each step logs with.
"""

import os

SECRET_KEY = "matrix-not-secret"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.postgres",
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("MATRIX_DB_NAME", "django_site"),
        "USER": os.environ.get("MATRIX_DB_USER", "postgres"),
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("MATRIX_DB_PORT", "5432"),
        "OPTIONS": {"application_name": os.environ.get("MATRIX_DB_APP", "django")},
    }
}
