#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpm_async.settings")
    if not any(argument == "--settings" or argument.startswith("--settings=") for argument in sys.argv):
        # Every command starts by loading the settings: a misspelt variable is one line on stderr
        # and exit status 2, not a traceback (dpm_async/environment.py).
        from dpm_async.environment import settings_or_exit

        settings_or_exit("manage.py")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
