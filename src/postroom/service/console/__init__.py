"""The admin console: server-rendered pages (Jinja2), one small script, no build step.
The pages are assembled in :mod:`postroom.service.console.routes`."""
