import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpm_async.settings")
django_application = get_wsgi_application()

from dpm_async.limits import ChunkedBodyLimit  # noqa: E402 - needs the settings module set above

# Chunked request bodies are read here, bounded (dpm_async/limits.py); Django alone would see none.
application = ChunkedBodyLimit(django_application)
