from __future__ import annotations

import logging

from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin.apps import AdminConfig


class DpmAsyncConfig(AppConfig):
    name = "dpm_async"
    verbose_name = "dpm_async"

    def ready(self) -> None:
        # Settings are read before logging is configured; their warnings (an invalid execution
        # mode or TTL that fell back to the default) are logged here, once per process.
        logger = logging.getLogger("dpm_async.settings")
        for message in settings.DPM_SETTINGS_WARNINGS:
            logger.warning(message)


class DpmAdminConfig(AdminConfig):
    """Django's admin app, with `admin.site` being `DpmAdminSite` (a login that counts failures)."""

    default_site = "dpm_async.admin_site.DpmAdminSite"
