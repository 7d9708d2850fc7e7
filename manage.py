#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    from django.core.management import execute_from_command_line

    from audit.context import set_default_source

    # Whatever a command changes (loadconfig, createapikey, seeddemo, a shell session) is
    # audited as done from the command line.
    set_default_source("cli")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
