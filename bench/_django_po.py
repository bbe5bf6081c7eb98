"""django-post-office's side of bench/delivery.py; runs in the throwaway virtualenv.

``setup DIR PORT`` writes a minimal Django project into DIR (settings module
``bench_settings``: SQLite in DIR/db.sqlite3, post_office with Django's SMTP backend
pointed at 127.0.0.1:PORT) and migrates it. ``enqueue DIR N SINGLE`` queues N messages:
the first SINGLE with ``mail.send()`` one at a time (each timed), the rest with
``mail.send_many()`` in batches of 1000, and prints the timings as JSON. Sending is then
``python -m django send_queued_mail``, started and timed by the parent.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

SETTINGS = """\
SECRET_KEY = "bench"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "post_office"]
TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates"}}]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
EMAIL_BACKEND = "post_office.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = {port}
POST_OFFICE = {{"BACKENDS": {{"default": "django.core.mail.backends.smtp.EmailBackend"}}}}
LOGGING = {{"version": 1, "disable_existing_loggers": False,
           "root": {{"level": "WARNING", "handlers": []}}}}
"""

BATCH = 1000


def message(index: int) -> dict[str, object]:
    """The same message as postroom's side sends."""
    return {
        "sender": "postroom@localhost",
        "recipients": [f"user{index}@example.com"],
        "subject": f"Delivery benchmark {index}",
        "message": f"Hello,\n\nthis is message {index} of the postroom delivery benchmark.\n",
    }


def setup(folder: Path, port: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    db = str(folder / "db.sqlite3")
    (folder / "bench_settings.py").write_text(SETTINGS.format(db=db, port=port))
    django_setup(folder)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def django_setup(folder: Path) -> None:
    sys.path.insert(0, str(folder))
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_settings"
    import django

    django.setup()


def enqueue(folder: Path, total: int, single: int) -> dict[str, float]:
    django_setup(folder)
    from post_office import mail

    latencies = []
    started = time.perf_counter()
    for index in range(single):
        began = time.perf_counter()
        mail.send(**message(index))  # type: ignore[arg-type]
        latencies.append(time.perf_counter() - began)
    single_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for first in range(single, total, BATCH):
        mail.send_many([message(i) for i in range(first, min(first + BATCH, total))])
    many_seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "single_count": single,
        "single_seconds": single_seconds,
        "single_median_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "single_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
        "many_count": total - single,
        "many_seconds": many_seconds,
    }


def main() -> None:
    command, folder = sys.argv[1], Path(sys.argv[2])
    if command == "setup":
        setup(folder, int(sys.argv[3]))
    elif command == "enqueue":
        print(json.dumps(enqueue(folder, int(sys.argv[3]), int(sys.argv[4]))))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
