"""Test settings: the service's own settings, with a throwaway secret key when none is set.

The test client speaks plain http, like `make run`: HTTPS enforcement is off unless a test turns
it on (tests/api/test_security_settings.py checks the production values).
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret")
os.environ.setdefault("DJANGO_SECURE_HTTPS", "false")
# The fair-use limits are off for the suite (a test of anything else must not be throttled, nor
# refused for its hundred PENDING rows); tests/api/test_fair_use*.py turn each one on. Set in the
# environment, so the services the tests start (gunicorn, workers) have them off too.
os.environ.setdefault("DPM_THROTTLE_ANALYZE_RATE", "off")
os.environ.setdefault("DPM_THROTTLE_SUBMIT_RATE", "off")
os.environ.setdefault("DPM_AUTH_FAILURE_RATE", "off")
os.environ.setdefault("DPM_ASYNC_MAX_UNFINISHED_PER_OWNER", "0")

from dpm_async.settings import *  # noqa: E402,F403
