"""Find injected, executable HTML in a page or fragment.

Pages legitimately carry their own scripts, so the checks look for what a payload from
tests/security/hostile_payloads.txt would leave behind if it got through: a script,
event handler, htmx attribute or style carrying the marker, or any javascript:/data:
URL. Template-injection canaries are checked as plain text (`ZZCANARYZZ` only appears
when Django evaluated `{{ "zzcanaryzz"|upper }}`).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

MARKER = "XSS1337"
CANARY_EVALUATED = "ZZCANARYZZ"
PAYLOADS = [
    line
    for line in (Path(__file__).parent / "hostile_payloads.txt").read_text().splitlines()
    if line and not line.startswith("# ")
]
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "background", "poster", "srcdoc"}
BAD_SCHEME = re.compile(r"^(javascript|vbscript|data):", re.IGNORECASE)
JSON_SCRIPT_TYPES = {"application/json", "application/ld+json"}


def _scheme_of(value: str) -> str:
    # Browsers ignore leading whitespace/control characters and embedded tabs/newlines in schemes.
    return re.sub(r"[\x00-\x20]", "", value)


class _Finder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attrs_d = {name: value or "" for name, value in attrs}
        for name, value in attrs_d.items():
            # A URL attribute is dangerous by its scheme; a relative link that merely
            # contains the marker text is inert.
            risky_name = name.startswith(("on", "hx-", "data-hx-")) or name in ("style", "srcdoc", "content")
            bad_url = name in URL_ATTRS and BAD_SCHEME.match(_scheme_of(value))
            if (risky_name and MARKER in value) or bad_url:
                self.found.append(f"<{tag} {name}={value[:80]!r}>")
        if tag in ("script", "style"):
            kind = attrs_d.get("type", "").lower()
            self._script = "data" if kind in JSON_SCRIPT_TYPES else tag
            self._text = []
            if MARKER in attrs_d.get("src", ""):
                self.found.append(f"<script src={attrs_d['src'][:80]!r}>")

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._script is not None:
            text = "".join(self._text)
            if self._script != "data" and MARKER in text:
                self.found.append(f"<{tag}>{text[:80]!r}")
            self._script = None


def injected(html: str) -> list[str]:
    """What in `html` a hostile payload made executable (empty when nothing)."""
    finder = _Finder()
    finder.feed(html)
    finder.close()
    found = finder.found
    if CANARY_EVALUATED in html:
        found.append("a Django template tag in data was evaluated (ZZCANARYZZ)")
    return found


ALLOWED_FRAGMENT_TAGS = {
    "a", "b", "blockquote", "br", "code", "em", "h3", "h4", "hr", "i", "li", "ol", "p", "pre", "strong", "ul",
}  # fmt: skip


class _Strict(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_FRAGMENT_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if tag != "a" or name not in ("href", "title", "rel"):
                self.found.append(f"<{tag} {name}>")
            elif name == "href" and _unsafe_link(value or ""):
                self.found.append(f"<a href={value!r}>")


def _unsafe_link(href: str) -> bool:
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", _scheme_of(href))
    return scheme is not None and scheme.group(1).lower() not in ("http", "https", "mailto")


def fragment_problems(fragment: str) -> list[str]:
    """Strict check of sanitised message HTML: only the allow-listed tags, only safe links."""
    strict = _Strict()
    strict.feed(fragment)
    strict.close()
    return strict.found + injected(fragment)
