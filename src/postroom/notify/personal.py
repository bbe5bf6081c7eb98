"""Render a notification once per event, then personalise each recipient's copy.

Fan-out to 100 people would otherwise render three templates 100 times. A template
qualifies when it uses the recipient's values (``recipient.*``, ``unsubscribe_url``)
only as plain output or as the whole test of an ``{% if %}``: then rendering with
markers and putting each recipient's values in their place gives exactly what a
render per recipient would. Any other use (a comparison, a filter, a ``set``) and
the notifier renders per recipient, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jinja2
from jinja2 import meta, nodes
from markupsafe import escape

from postroom.notify.templates import Rendered

PERSON_FIELDS = ("username", "full_name", "name", "email")
PERSONAL_NAMES = frozenset({"recipient", "unsubscribe_url"})


def _mark(name: str) -> str:
    # Private-use characters: no filter or escaping touches them, and no data holds them.
    return f"\ue000{name}\ue001"


RECIPIENT_MARKS = {field: _mark(field) for field in PERSON_FIELDS}
URL_MARK = _mark("unsubscribe_url")


_MARKS = re.compile("(\ue000[a-z_]+\ue001)")


class Shared:
    """A rendering made with the marks, split once at them; :meth:`personalise` then
    joins the pieces with one recipient's values (HTML-escaped in the HTML form)."""

    def __init__(self, rendered: Rendered) -> None:
        self._subject = _MARKS.split(rendered.subject)
        self._text = _MARKS.split(rendered.text)
        self._html = _MARKS.split(rendered.html)
        # The fields the templates actually print: only those are filled in.
        used = {p for pieces in (self._subject, self._text, self._html) for p in pieces[1::2]}
        self._fields = [
            (RECIPIENT_MARKS[f], f) for f in PERSON_FIELDS if RECIPIENT_MARKS[f] in used
        ]

    def personalise(self, recipient: dict[str, Any] | None, url: str) -> Rendered:
        values = {URL_MARK: url}
        if recipient is not None:
            for mark, field in self._fields:
                values[mark] = str(recipient.get(field) or "")
        escaped = {mark: str(escape(value)) for mark, value in values.items()}
        subject = _join(self._subject, values)
        return Rendered(
            subject=" ".join(subject.split()) if "\n" in subject else subject,
            text=_join(self._text, values),
            html=_join(self._html, escaped),
        )


def _join(pieces: list[str], values: dict[str, str]) -> str:
    # split() with a group puts the marks at the odd positions.
    return "".join(values.get(p, p) if i % 2 else p for i, p in enumerate(pieces))


def uses_recipient_plainly(env: jinja2.Environment, name: str) -> bool:
    """Whether ``name`` and every template it extends, includes or imports use the
    recipient's values only as plain output or as an ``{% if %}`` test."""
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        source, filename, _ = env.loader.get_source(env, current)  # type: ignore[union-attr]
        tree = env.parse(source, current, filename)
        if not all(_plain(chain) for chain in _uses(tree, [])):
            return False
        for referenced in meta.find_referenced_templates(tree):
            if referenced is None:
                return False  # a template chosen at run time: cannot tell
            pending.append(referenced)
    return True


def _uses(node: nodes.Node, ancestors: list[nodes.Node]) -> Iterator[list[nodes.Node]]:
    """For each personal name the tree reads: the chain from it up to the root."""
    if isinstance(node, nodes.Name) and node.name in PERSONAL_NAMES:
        yield [node, *reversed(ancestors)]
        return
    for child in node.iter_child_nodes():
        yield from _uses(child, [*ancestors, node])


def _plain(chain: list[nodes.Node]) -> bool:
    name, parent = chain[0], chain[1] if len(chain) > 1 else None
    assert isinstance(name, nodes.Name)
    if name.ctx != "load":
        return False
    if isinstance(parent, nodes.If) and parent.test is name:
        return True
    if isinstance(parent, nodes.Output):
        return name.name == "unsubscribe_url"
    return (
        isinstance(parent, nodes.Getattr)
        and name.name == "recipient"
        and parent.attr in PERSON_FIELDS
        and len(chain) > 2
        and isinstance(chain[2], nodes.Output)
    )
