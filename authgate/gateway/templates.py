"""HTML for the browser pages: a few functions instead of a template engine.

Every value that did not come from this module is escaped. :class:`Markup` marks text
that is already HTML, so helpers compose without escaping twice -- and a plain ``str``
can never reach the page unescaped by accident. The stylesheet is inline and allowed
by its hash in the pages' Content-Security-Policy: no external assets, no second
request, and no ``'unsafe-inline'``.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Mapping

LANG = "en"


class Markup(str):
    """Text that is already safe HTML."""

    __slots__ = ()


def escape(value: str) -> Markup:
    return value if isinstance(value, Markup) else Markup(html.escape(value, quote=True))


def join(parts: Iterable[str]) -> Markup:
    return Markup("".join(escape(part) for part in parts))


CSS = """
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
body { margin: 0; padding: 2rem 1rem; }
main { max-width: 26rem; margin: 0 auto; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
label { display: block; font-weight: 600; margin-top: 1rem; }
input[type=text], input[type=email], input[type=password] {
  box-sizing: border-box; width: 100%; padding: .5rem; font-size: 1rem; margin-top: .25rem;
  border: 1px solid #767676; border-radius: 4px;
}
input[aria-invalid=true] { border: 2px solid #b00020; }
button { margin-top: 1.25rem; padding: .6rem 1.2rem; font-size: 1rem; border-radius: 4px;
  border: 1px solid #0b57d0; background: #0b57d0; color: #fff; cursor: pointer; }
button:focus-visible, input:focus-visible, a:focus-visible, summary:focus-visible {
  outline: 3px solid #f9a825; outline-offset: 2px;
}
.error { border-left: 4px solid #b00020; padding: .5rem .75rem; margin: 1rem 0;
  background: rgba(176, 0, 32, .08); }
.field-error { color: #b00020; margin: .25rem 0 0; }
.hint { margin: .25rem 0 0; opacity: .8; }
.notice { border-left: 4px solid #0b57d0; padding: .5rem .75rem; margin: 1rem 0; }
details { margin-top: 1rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
@media (prefers-color-scheme: dark) {
  .error, .field-error { color: #ff8a80; }
  input[aria-invalid=true] { border-color: #ff8a80; }
}
"""
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()


def document(title: str, body: Markup) -> str:
    return (
        f'<!doctype html>\n<html lang="{LANG}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)} - authgate</title><style>{CSS}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>\n"
    )


def paragraph(text: str, *, css_class: str | None = None) -> Markup:
    attribute = f' class="{escape(css_class)}"' if css_class else ""
    return Markup(f"<p{attribute}>{escape(text)}</p>")


def link(href: str, text: str) -> Markup:
    return Markup(f'<p><a href="{escape(href)}">{escape(text)}</a></p>')


def alert(message: str) -> Markup:
    """A problem with the whole form, announced by screen readers when it appears."""
    return Markup(f'<div class="error" role="alert" id="form-error">{escape(message)}</div>')


def notice(message: str) -> Markup:
    return Markup(f'<div class="notice" role="status">{escape(message)}</div>')


def field(
    name: str,
    label: str,
    *,
    kind: str = "text",
    autocomplete: str | None = None,
    value: str = "",
    error: str | None = None,
    hint: str | None = None,
    required: bool = True,
    autofocus: bool = False,
    extra: Mapping[str, str] | None = None,
) -> Markup:
    """A labelled input; its error and hint are tied to it with ``aria-describedby``
    so a screen reader reads them with the field."""
    field_id = f"field-{name}"
    described = []
    attributes = {
        "type": kind,
        "id": field_id,
        "name": name,
        **({"autocomplete": autocomplete} if autocomplete else {}),
        **({"value": value} if value and kind != "password" else {}),
        **dict(extra or {}),
    }
    after = []
    if hint:
        described.append(f"{field_id}-hint")
        after.append(f'<p class="hint" id="{field_id}-hint">{escape(hint)}</p>')
    if error:
        described.append(f"{field_id}-error")
        attributes["aria-invalid"] = "true"
        after.append(f'<p class="field-error" id="{field_id}-error">{escape(error)}</p>')
    if described:
        attributes["aria-describedby"] = " ".join(described)
    flags = (" required" if required else "") + (" autofocus" if autofocus else "")
    rendered = " ".join(f'{key}="{escape(val)}"' for key, val in attributes.items())
    return Markup(
        f'<label for="{field_id}">{escape(label)}</label><input {rendered}{flags}>' + "".join(after)
    )


def hidden(name: str, value: str) -> Markup:
    return Markup(f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">')


def form(
    action: str,
    *,
    csrf_token: str,
    submit: str,
    fields: Iterable[Markup] = (),
    hidden_fields: Mapping[str, str | None] | None = None,
    error: str | None = None,
) -> Markup:
    """A POST form carrying the CSRF token; ``error`` is shown above it."""
    parts = [alert(error)] if error else []
    parts.append(Markup(f'<form method="post" action="{escape(action)}">'))
    parts.append(hidden("csrf_token", csrf_token))
    parts.extend(
        hidden(name, value) for name, value in (hidden_fields or {}).items() if value is not None
    )
    parts.extend(fields)
    parts.append(Markup(f'<button type="submit">{escape(submit)}</button></form>'))
    return join(parts)


def details(summary: str, content: Markup) -> Markup:
    """Folded content that opens without JavaScript."""
    return Markup(f"<details><summary>{escape(summary)}</summary>{content}</details>")


def definitions(items: Iterable[tuple[str, str]]) -> Markup:
    rows = "".join(f"<dt>{escape(term)}</dt><dd>{escape(value)}</dd>" for term, value in items)
    return Markup(f"<dl>{rows}</dl>")
