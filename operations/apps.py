from django.apps import AppConfig
from django.db.backends.signals import connection_created


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Async operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from operations.models import raw_json_loader_install

        # Infrastructure, not domain flow: teach each new PostgreSQL connection to read `json`
        # columns as raw bytes (see RawJSONField).
        connection_created.connect(raw_json_loader_install, dispatch_uid="operations.raw_json_loader")
