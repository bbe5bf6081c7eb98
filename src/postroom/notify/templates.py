"""Mail templates: Jinja2, a subject, a text and an HTML form per type (DESIGN §6).

Shipped in the package and overridden file by file from ``$POSTROOM_HOME/templates/``.
HTML is autoescaped; undefined variables are errors (StrictUndefined), found by
:meth:`Templates.check` (``postroom templates check`` and start-up) rather than sent
as a blank.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import meta, nodes

from postroom.errors import EventError
from postroom.notify.samples import sample_context
from postroom.settings.senders import EVENT_KINDS

_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
FORMS = ("subject.txt", "txt", "html")
DIGEST = "digest"
#: Every variable a template may use; each render gets all of them.
CONTEXT_NAMES = (
    "event",
    "data",
    "object",
    "actor",
    "recipient",
    "mentioned",
    "site_url",
    "unsubscribe_url",
    "attempts",
    "items",
)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    template: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.template}, line {self.line}" if self.line else self.template
        return f"{where}: {self.message}"


def template_names() -> list[str]:
    """Every template a deployment needs: three forms of each type, and of the digest."""
    bases = [kind.name for kind in EVENT_KINDS] + [DIGEST]
    return [f"{base}.{form}" for base in bases for form in FORMS]


def fit(text: object, room: int, end: str = "…") -> str:
    """``text`` in at most ``room`` characters (at least 16), cut at a word where it
    can: subjects stay under 78 characters where the data allows."""
    shown = " ".join(str(text).split())
    room = max(room, 16)
    if len(shown) <= room:
        return shown
    cut = shown[: room - len(end)]
    if " " in cut[room // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:-") + end


class Templates:
    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        search = [str(PACKAGE_TEMPLATES)]
        if override_dir is not None:
            search.insert(0, str(override_dir))
        loader = jinja2.FileSystemLoader(search)
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "keep_trailing_newline": True,
            "auto_reload": True,
        }
        self._text = jinja2.Environment(autoescape=False, **common)  # noqa: S701 (plain text)
        self._html = jinja2.Environment(autoescape=True, **common)
        for env in (self._text, self._html):
            env.globals["fit"] = fit
        self._once: dict[str, tuple[tuple[jinja2.Template, ...], bool]] = {}
        self._seen_overrides = self._overrides_stamp()

    def _overrides_stamp(self) -> int:
        try:
            return 0 if self.override_dir is None else self.override_dir.stat().st_mtime_ns
        except OSError:
            return 0

    def _fresh(self) -> None:
        """A file added to (or removed from) HOME/templates takes effect at once: Jinja
        notices changed files, not a new one that now hides a shipped template."""
        stamp = self._overrides_stamp()
        if stamp != self._seen_overrides:
            self._seen_overrides = stamp
            for env in (self._text, self._html):
                if env.cache is not None:
                    env.cache.clear()
            self._once.clear()

    def overridden(self) -> list[str]:
        if self.override_dir is None or not self.override_dir.is_dir():
            return []
        return sorted(p.name for p in self.override_dir.iterdir() if p.is_file())

    def _env(self, name: str) -> jinja2.Environment:
        return self._html if name.endswith(".html") else self._text

    def render_one(self, name: str, context: Mapping[str, Any]) -> str:
        env = self._env(name)
        try:
            return env.get_template(name).render(context)
        except jinja2.TemplateError as exc:
            raise EventError(str(_problem(name, exc)), field="template") from None

    def render(self, base: str, context: Mapping[str, Any]) -> Rendered:
        """The three forms of ``base`` (a type, or ``digest``) with ``context``."""
        self._fresh()
        subject = self.render_one(f"{base}.subject.txt", context)
        return Rendered(
            subject=" ".join(subject.split()),  # one line, whatever the data held
            text=_tidy(self.render_one(f"{base}.txt", context)),
            html=self.render_one(f"{base}.html", context),
        )

    def renders_once(self, base: str) -> bool:
        """Whether ``base``'s three forms may be rendered once per event and then
        personalised (see :mod:`postroom.notify.personal`)."""
        from postroom.notify.personal import uses_recipient_plainly

        self._fresh()
        key = tuple(self._env(f"{base}.{form}").get_template(f"{base}.{form}") for form in FORMS)
        cached = self._once.get(base)
        if cached is None or cached[0] != key:
            try:
                once = all(
                    uses_recipient_plainly(self._env(f"{base}.{form}"), f"{base}.{form}")
                    for form in FORMS
                )
            except jinja2.TemplateError:
                once = False
            cached = (key, once)
            self._once[base] = cached
        return cached[1]

    def check(self) -> list[TemplateProblem]:
        """Every template parsed, its names checked, and rendered with sample data."""
        self._fresh()
        problems: list[TemplateProblem] = []
        for name in template_names():
            env = self._env(name)
            try:
                source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
                tree = env.parse(source, name, filename)
            except jinja2.TemplateError as exc:
                problems.append(_problem(name, exc))
                continue
            unknown = sorted(meta.find_undeclared_variables(tree) - set(CONTEXT_NAMES))
            if unknown:
                problems.append(_unknown_name(name, tree, unknown[0]))
                continue
            for context in sample_context(_base_of(name)):
                try:
                    env.get_template(name).render(context)
                except jinja2.TemplateError as exc:
                    problems.append(_problem(name, exc))
                    break
        return problems


def _tidy(text: str) -> str:
    """No runs of blank lines where optional parts were left out; one final newline."""
    return _BLANK_RUNS.sub("\n\n", text).strip("\n") + "\n"


def _base_of(name: str) -> str:
    for form in FORMS:
        if name.endswith("." + form):
            return name[: -len(form) - 1]
    return name


def _unknown_name(template: str, tree: nodes.Template, name: str) -> TemplateProblem:
    line = next((node.lineno for node in tree.find_all(nodes.Name) if node.name == name), None)
    return TemplateProblem(
        template, line, f"unknown variable {name!r}; use {', '.join(CONTEXT_NAMES)}"
    )


def _problem(template: str, exc: jinja2.TemplateError) -> TemplateProblem:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateProblem(exc.name or template, exc.lineno, exc.message or "syntax error")
    where, line = template, _line_of(exc.__traceback__)
    message = exc.message or str(exc)
    if isinstance(exc, jinja2.UndefinedError):
        message = message.replace("is undefined", "is not defined for this event")
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateProblem(template, None, f"template {exc.name} is missing")
    return TemplateProblem(where, line, message)


def _line_of(tb: TracebackType | None) -> int | None:
    """The template line of the innermost frame Jinja mapped back to template source."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith((".txt", ".html")):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
