"""Asking Chromium what it drew, for the tests whose subject is pixels and fonts."""

from __future__ import annotations

from playwright.async_api import Page


async def fonts_used(page: Page, selector: str) -> set[str]:
    """The font families Chromium actually drew the first ``selector`` node with."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("DOM.enable")
    await cdp.send("CSS.enable")
    root = await cdp.send("DOM.getDocument")
    node = await cdp.send(
        "DOM.querySelector", {"nodeId": root["root"]["nodeId"], "selector": selector}
    )
    fonts = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
    await cdp.detach()
    return {f["familyName"] for f in fonts["fonts"]}
