"""The admin page's devices in Chromium: the list, "Add device" showing the URL once, the URL pressing, "Remove"."""
import json
import urllib.error
import urllib.request

from playwright.sync_api import expect

from tests.test_admin_page import Tab, browser, context, server, signed_in  # noqa: F401 - the fixtures


def test_add_a_device_copy_its_url_press_with_it_and_remove_it(context, server):  # noqa: F811
    """Add device shows the full URL once; the URL presses as that device; the list shows it; Remove ends it."""
    tab = Tab(context, server)
    page = signed_in(tab)
    expect(page.locator("#devices-empty")).to_be_visible()
    page.get_by_label("Device name").fill("Lobby button")
    page.get_by_label("Presses by (optional)").fill("Sales")
    page.get_by_role("button", name="Add device").click()
    url_field = page.get_by_label("The new device's URL")
    expect(url_field).to_be_visible()
    url = url_field.input_value()
    assert url.startswith(server.url + "/hook/") and len(url) > len(server.url + "/hook/") + 20
    row = page.locator("#devices-rows tr[data-device='Lobby button']")
    expect(row).to_contain_text("Button or script")
    expect(row.locator("td.by")).to_have_text("Sales")
    expect(row.locator("td.seen")).to_have_text("Never")
    page.get_by_role("button", name="Copy").click()  # plain http: no clipboard API, says how instead
    expect(page.locator("#devices-error, #devices-done").locator("visible=true")).to_have_count(1)

    with urllib.request.urlopen(url + "?note=Acme", timeout=5) as r:  # a Wi-Fi button calls its URL
        assert json.loads(r.read())["count"] == 19
    expect(page.locator("#count")).to_have_text("19")
    expect(page.locator("#latest-rows td.source").first).to_have_text("Lobby button")
    page.reload()
    page = signed_in(tab)
    expect(page.get_by_label("The new device's URL")).to_be_hidden()  # shown once: not after a reload
    expect(row.locator("td.presses")).to_have_text("1")
    expect(row.locator("td.seen")).not_to_have_text("Never")
    secret = url[len(server.url + "/hook/"):]
    assert secret not in page.content()  # the secret is nowhere on the page now: not in its HTML,
    assert page.get_by_label("The new device's URL").input_value() == ""  # nor in the field's value,
    kept = page.evaluate("() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert secret not in kept  # nor kept by the browser

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove").click()
    expect(page.locator("#devices-done")).to_contain_text("Lobby button removed.")
    expect(page.locator("#devices-rows tr")).to_have_count(0)
    try:
        urllib.request.urlopen(url, timeout=5)
        raise AssertionError("a removed device's URL still works")
    except urllib.error.HTTPError as e:
        assert e.code == 404
    tab.check_clean(r"status of 404")


def test_a_name_already_used_is_said_next_to_the_form(context, server):  # noqa: F811
    """Adding a device by a name in use shows the API's 409 error and lists the device once."""
    tab = Tab(context, server)
    page = signed_in(tab)
    for _ in range(2):
        page.get_by_label("Device name").fill("Desk")
        page.get_by_role("button", name="Add device").click()
        expect(page.locator("#devices-rows tr")).to_have_count(1)
    expect(page.locator("#devices-error")).to_contain_text("Desk")
    tab.check_clean(r"status of 409")


def test_the_countdown_page_names_the_device_that_pressed(context, server):  # noqa: F811
    """A press from a device without a "by" shows the device's name in the page's note band."""
    url = server.request("POST", "/api/devices", {"name": "Lobby button", "kind": "button"})[1]["url"]
    tab = Tab(context, server)
    page = tab.open("/").page
    with urllib.request.urlopen(server.url + url, timeout=5) as r:
        assert json.loads(r.read())["count"] == 19
    expect(page.locator("#note")).to_have_text("Lobby button")
    tab.check_clean()
