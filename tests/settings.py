"""Test settings: the service's own settings, with a throwaway secret key when none is set.

The test client speaks plain http, like `make run`: HTTPS enforcement is off unless a test turns
it on (tests/api/test_security_settings.py checks the production values).
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret")
os.environ.setdefault("DJANGO_SECURE_HTTPS", "false")

from dpm_async.settings import *  # noqa: E402,F403
