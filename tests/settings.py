"""Test settings: the service's own settings, with a throwaway secret key when none is set."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret")

from dpm_async.settings import *  # noqa: E402,F403
