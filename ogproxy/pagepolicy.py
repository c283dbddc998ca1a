"""An untrusted card's page refuses, by itself, what the fetcher would refuse anyway.

Every request of an untrusted page is routed through Playwright's driver to the server's
fetcher, one round trip each: a page that asked for 22,000 URLs held its render for the
whole timeout and took ~18 CPU seconds of the driver, the browser and the server. So the
page gets a Content-Security-Policy (PageRequests.policy: the fetcher's own rules, other
origins and anything but images, stylesheets and fonts refused) and such requests end in
its own renderer, never routed. What the policy refused is still reported as the
fetcher's refusals (a 422 when strict), from a count the page keeps.

The policy is a ``<meta>`` that must reach ``<head>``, and a doctype must stay first (else
the page drops to quirks mode): ``guarded`` puts our markup right after a doctype that
only whitespace and comments precede, as the HTML tokenizer reads them, else at the very
start, in one linear scan. Either way the parser has not started ``<html>`` when it meets
the ``<meta>``. A card's own scripts run after ours: the count is kept in a closure, with
the functions it uses taken before any of the card's code ran, behind a property the card
cannot replace, and ``report`` checks what comes back. A card that tampers with it (a
``document.open()`` drops the listener) only hides its own refusals.
"""

from __future__ import annotations

import json
import re
from html import escape

# Without a fetcher every request is refused: nothing over the network, whatever kind.
NO_REQUESTS = "default-src data: blob: 'unsafe-inline' 'unsafe-eval'"
SHOWN = 5  # refusals the page reports one by one (the rest are counted)

_WHITESPACE = "\t\n\f\r "  # HTML's; Python's \s has more (a vertical tab is text to HTML)
# A character reference to one of those is whitespace too, ignored before a doctype:
# numeric (leading zeros, ";" optional) or the named &Tab; and &NewLine;.
_SPACE_REFERENCE = re.compile(
    r"&(?:#[xX]0*(?:9|[aAcCdD]|20)(?![0-9a-fA-F])|#0*(?:9|10|12|13|32)(?![0-9]));?"
    r"|&(?:Tab|NewLine);"
)
_COMMENT_END = re.compile(r"--!?>")

# Counts the violations of our policy only (a card's own policy blocks what it chooses).
_COUNTER = """(() => {
  const policy = POLICY, S = String, apply = Reflect.apply, slice = S.prototype.slice;
  let n = 0, shown = 0, report = "";
  addEventListener("securitypolicyviolation", (e) => {
    if (!e.isTrusted || e.originalPolicy !== policy) return;
    n++;
    if (shown < SHOWN) {
      shown++;
      report += apply(slice, S(e.blockedURI), [0, 300]) + "\\n"
        + apply(slice, S(e.effectiveDirective), [0, 40]) + "\\n";
    }
  }, true);
  // Not writable: a card must not report refusals it never made (they are counted
  // server-wide, in /metrics).
  Object.defineProperty(window, "__ogBlocked", { value: () => [n, report] });
})();"""

# Read after the page settled; anything but what the counter returns reads as nothing.
REPORT_JS = """() => {
  try {
    return window.__ogBlocked();
  } catch (e) {
    return null;
  }
}"""


def guarded(html: str, policy: str) -> str:
    """``html`` with the policy and its counter in it, where ``_guard_at`` says."""
    literal = json.dumps(policy).replace("<", "\\u003c")  # inside <script>: no "</script"
    counter = _COUNTER.replace("SHOWN", str(SHOWN)).replace("POLICY", literal)  # ours first
    head = f'<meta http-equiv="Content-Security-Policy" content="{escape(policy)}">'
    head += f"<script>{counter}</script>"
    at = _guard_at(html)
    return html[:at] + head + html[at:]


def _guard_at(html: str) -> int:
    """After a doctype that only whitespace and comments precede, else 0 (linear)."""
    i, n = 0, len(html)
    while True:
        while i < n:
            if html[i] in _WHITESPACE:
                i += 1
            elif html[i] == "&" and (space := _SPACE_REFERENCE.match(html, i)):
                i = space.end()
            else:
                break
        if html.startswith("<!--", i):
            i = _comment_end(html, i + 4)
        elif html[i : i + 9].lower() == "<!doctype":
            end = html.find(">", i + 9)
            return end + 1 if end >= 0 else 0
        elif html.startswith(("<?", "<!"), i):  # a bogus comment, up to the next ">"
            i = _after(html, ">", i + 2)
        elif html.startswith("</>", i):  # an end tag without a name: nothing at all
            i += 3
        elif html.startswith("</", i) and not _ascii_letter(html[i + 2 : i + 3]):
            i = _after(html, ">", i + 2)  # "</" and no tag name: a bogus comment
        else:
            return 0
        if i < 0:
            return 0


def _comment_end(html: str, start: int) -> int:
    """Just after the comment whose text starts at ``start``, or -1 at the end of input.
    ``<!-->`` and ``<!--->`` are whole comments; one ends at ``-->`` or ``--!>``."""
    if html.startswith(">", start):
        return start + 1
    if html.startswith("->", start):
        return start + 2
    end = _COMMENT_END.search(html, start)  # the first of either: one pass, linear
    return end.end() if end else -1


def _ascii_letter(char: str) -> bool:
    return len(char) == 1 and ("a" <= char <= "z" or "A" <= char <= "Z")


def _after(html: str, token: str, start: int) -> int:
    at = html.find(token, start)
    return at + len(token) if at >= 0 else -1


def report(value: object) -> tuple[int, list[tuple[str, str]]]:
    """The counter's answer as (refused requests, the first few as (URL, directive));
    (0, []) for anything else (a card that replaced it)."""
    if not (isinstance(value, list) and len(value) == 2):
        return 0, []
    count, text = value
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if type(count) is not int or not 0 <= count <= 10**9 or not isinstance(text, str):
        return 0, []
    lines = text.split("\n")[: 2 * SHOWN]
    first = [(url, directive) for url, directive in zip(lines[::2], lines[1::2], strict=False)]
    return max(count, len(first)), first
