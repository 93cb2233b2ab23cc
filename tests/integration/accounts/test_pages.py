"""The browser pages, driven like a browser: forms parsed from the HTML, cookies kept
by the client, redirects inspected rather than followed. Both backends."""

from __future__ import annotations

import dataclasses
import html.parser
import urllib.parse
from collections.abc import Callable

import pytest
from aiohttp import ClientResponse, web

from authgate.gateway import pages
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from authgate.identity.store.db import Database
from tests.integration.accounts.conftest import (
    PASSWORD,
    Account,
    Client,
    Inbox,
    MakeClient,
    enable_totp,
    register,
    signed_up,
    step_clock,
)
from tests.integration.conftest import FakeClock

MakeApp = Callable[[settings_mod.Settings], web.Application]
ISSUER_ORIGIN = "http://127.0.0.1:8080"  # the default issuer the settings keep
ALLOWED = ("app.example.com", ".example.org")


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return dataclasses.replace(settings, allowed_redirect_domains=ALLOWED)


@pytest.fixture
def clock() -> FakeClock:
    return step_clock()


@pytest.fixture
def store(database: Database, clock: FakeClock) -> Store:
    return Store(database, clock)


# --- a small browser ----------------------------------------------------------------


@dataclasses.dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = dataclasses.field(default_factory=dict)


class Page(html.parser.HTMLParser):
    """What a test needs of a page: its forms, its elements' attributes by id, text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.inputs: dict[str, dict[str, str]] = {}  # by name
        self.by_id: dict[str, dict[str, str]] = {}
        self.labels: dict[str, str] = {}  # for= -> label text
        self.lang = ""
        self.scripts = 0
        self._label: str | None = None
        self.text_parts: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if "id" in attributes:
            self.by_id[attributes["id"]] = {"tag": tag, **attributes}
        if tag == "html":
            self.lang = attributes.get("lang", "")
        elif tag == "script":
            self.scripts += 1
        elif tag == "form":
            self.forms.append(Form(attributes.get("action", ""), attributes.get("method", "")))
        elif tag == "input" and "name" in attributes:
            self.inputs[attributes["name"]] = attributes
            if self.forms:
                self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "label":
            self._label = attributes.get("for", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label = None

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._label is not None:
            self.labels[self._label] = self.labels.get(self._label, "") + data

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def form(self, action: str) -> Form:
        [found] = [f for f in self.forms if f.action == action]
        return found

    def error_of(self, name: str) -> str:
        """The error text tied to input ``name`` through aria-describedby."""
        field = self.inputs[name]
        assert field.get("aria-invalid") == "true", field
        described = field.get("aria-describedby", "").split()
        errors = [i for i in described if self.by_id[i].get("class") == "field-error"]
        assert errors, field
        return errors[0]


async def get(client: Client, url: str) -> tuple[ClientResponse, Page]:
    response = await client.get(url, allow_redirects=False)
    return response, Page(await response.text())


async def submit(
    client: Client, page: Page, action: str, **values: str
) -> tuple[ClientResponse, Page]:
    """Fill in and post the page's form for ``action``, as a browser would."""
    form = page.form(action)
    assert form.method == "post"
    response = await client.post(action, data={**form.fields, **values}, allow_redirects=False)
    return response, Page(await response.text())


def assert_html_page(response: ClientResponse, page: Page) -> None:
    assert response.content_type == "text/html"
    assert page.lang == "en"
    assert page.scripts == 0
    csp = response.headers["Content-Security-Policy"]
    assert "form-action 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # default-src 'none' forbids every script
    assert response.headers["Cache-Control"] == "no-store"
    for name, attributes in page.inputs.items():
        if attributes.get("type") != "hidden":
            assert page.labels.get(attributes["id"]), f"{name} has no label"


async def sign_in(
    client: Client, account: Account, *, rd: str | None = None
) -> tuple[ClientResponse, Page]:
    url = "/login" if rd is None else f"/login?{urllib.parse.urlencode({'rd': rd})}"
    response, page = await get(client, url)
    assert response.status == 200
    return await submit(client, page, "/login", login=account.email, password=account.password)


async def session_count(store: Store, account: Account) -> int:
    return len(await store.sessions.list_for_user(account.id))


# --- signing in ---------------------------------------------------------------------


async def test_signing_in_lands_on_the_account_page(
    client: Client, inbox: Inbox, store: Store
) -> None:
    await signed_up(client, inbox, "ada@example.com", username="ada")
    client.session.cookie_jar.clear()
    response, page = await get(client, "/login")
    assert response.status == 200
    assert_html_page(response, page)
    assert page.inputs["login"]["autocomplete"] == "username"
    assert page.inputs["password"]["autocomplete"] == "current-password"
    assert page.inputs["password"]["type"] == "password"
    csrf_cookie = response.cookies["authgate_session_csrf"]
    assert csrf_cookie["samesite"] == "Strict"
    assert csrf_cookie["httponly"]

    response, _ = await submit(client, page, "/login", login="ada", password=PASSWORD)
    assert response.status == 303
    assert response.headers["Location"] == "/account"
    assert response.cookies["authgate_session"]["httponly"]
    response, page = await get(client, "/account")
    assert response.status == 200
    assert_html_page(response, page)
    assert "ada@example.com" in page.text
    assert "Two-factor sign-in off" in page.text
    assert page.form("/logout").fields["csrf_token"]
    # Signed in, the sign-in page sends the browser on.
    response, _ = await get(client, "/login")
    assert (response.status, response.headers["Location"]) == (303, "/account")


async def test_a_wrong_password_is_shown_on_the_page(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "bob@example.com")
    client.session.cookie_jar.clear()
    sessions = await session_count(store, account)
    response, page = await get(client, "/login")
    response, page = await submit(
        client, page, "/login", login=account.email, password="not the password"
    )
    assert response.status == 400
    assert_html_page(response, page)
    assert page.by_id["form-error"]["role"] == "alert"
    assert "Wrong login or password." in page.text
    assert page.inputs["login"]["value"] == account.email  # kept; the password is not
    assert "value" not in page.inputs["password"]
    assert "authgate_session" not in response.cookies
    assert await session_count(store, account) == sessions


async def test_missing_fields_are_named_next_to_the_fields(client: Client) -> None:
    _, page = await get(client, "/login")
    response, page = await submit(client, page, "/login", login="  ", password="")
    assert response.status == 400
    assert_html_page(response, page)
    assert page.error_of("login") == "field-login-error"
    assert page.error_of("password") == "field-password-error"
    assert "Enter your email or user name." in page.text
    bad, page = await submit(client, page, "/login", login="ada\x00", password="x")
    assert bad.status == 400
    assert page.error_of("login")


async def test_a_rate_limited_sign_in_keeps_its_429(
    client: Client,
    inbox: Inbox,
    aiohttp_client: MakeClient,
    make_app: MakeApp,
    settings: settings_mod.Settings,
) -> None:
    account = await signed_up(client, inbox, "cat@example.com")
    strict = dataclasses.replace(settings, rate_limits=(("login", 1, 60),))
    browser = await aiohttp_client(make_app(strict))
    _, page = await get(browser, "/login")
    first, page = await submit(browser, page, "/login", login=account.email, password="wrong1")
    assert first.status == 400
    second, page = await submit(browser, page, "/login", login=account.email, password="wrong2")
    assert second.status == 429
    assert_html_page(second, page)
    assert int(second.headers["Retry-After"]) >= 1
    assert "Too many requests" in page.text


async def test_signing_in_with_mfa_takes_the_code_on_a_second_page(
    client: Client, inbox: Inbox, store: Store, clock: FakeClock
) -> None:
    account = await signed_up(client, inbox, "dan@example.com")
    factor = await enable_totp(client, account, clock.now)
    client.session.cookie_jar.clear()
    rd = "https://app.example.com/after?x=1"
    response, page = await sign_in(client, account, rd=rd)
    assert response.status == 200
    assert_html_page(response, page)
    assert "app.example.com:*" in response.headers["Content-Security-Policy"]
    form = page.form("/login/mfa")
    assert form.fields["mfa_token"]
    assert form.fields["rd"] == rd
    assert page.inputs["code"]["autocomplete"] == "one-time-code"
    assert page.inputs["code"]["inputmode"] == "numeric"
    assert "authgate_session" not in response.cookies

    wrong = "000000" if factor.code(clock.now) != "000000" else "111111"
    response, page = await submit(client, page, "/login/mfa", code=wrong)
    assert response.status == 400
    assert page.error_of("code")
    assert page.form("/login/mfa").fields["mfa_token"] == form.fields["mfa_token"]

    response, _ = await submit(client, page, "/login/mfa", code=factor.code(clock.now))
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == rd
    assert response.cookies["authgate_session"]
    _, page = await get(client, "/account")
    assert "Two-factor sign-in on" in page.text
    [session] = [s for s in await store.sessions.list_for_user(account.id) if "mfa" in s.amr]
    assert session.amr == ("pwd", "otp", "mfa")


async def test_a_backup_code_works_on_the_mfa_page_and_a_spent_token_says_so(
    client: Client, inbox: Inbox, clock: FakeClock
) -> None:
    account = await signed_up(client, inbox, "eve@example.com")
    factor = await enable_totp(client, account, clock.now)
    client.session.cookie_jar.clear()
    _, page = await sign_in(client, account)
    response, _ = await submit(
        client, page, "/login/mfa", backup_code=factor.backup_codes[0].upper()
    )
    assert (response.status, response.headers["Location"]) == (303, "/account")
    # The same page posted again (the back button): the MFA token is spent.
    response, again = await submit(client, page, "/login/mfa", code=factor.code(clock.now))
    assert response.status == 400
    assert "expired or was already completed" in again.text


async def test_the_mfa_page_alone_sends_the_browser_to_sign_in(client: Client) -> None:
    response, _ = await get(client, "/login/mfa")
    assert (response.status, response.headers["Location"]) == (303, "/login")


# --- where the browser goes after signing in ----------------------------------------

ALLOWED_RD = [
    "http://127.0.0.1:9000/back",  # the issuer's host, another port
    "https://app.example.com/path?q=1#top",
    "https://APP.example.com/",
    "https://example.org/",
    "https://deep.sub.example.org/x",
]
REFUSED_RD = [
    "//evil.com",
    "///evil.com",
    "/\\evil.com",
    "https://evil.com/",
    "https:\\\\evil.com",
    "https:/\\evil.com",
    "https:evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)//https://app.example.com",
    "data:text/html,<script>alert(1)</script>",
    "ftp://app.example.com/",
    "https://app.example.com@evil.com/",
    "https://app.example.com:443@evil.com/",
    "https://user:pass@app.example.com/",
    "https://evil.com\\@app.example.com/",
    "https://evil.com#@app.example.com",
    "https://evil.com?@app.example.com",
    "https://app.example.com.evil.com/",
    "https://evilapp.example.com/",  # exact host only for app.example.com
    "https://sub.app.example.com/",
    "https://notexample.org/",
    "https://example.org.evil.com/",
    "https://app.example.com%2f@evil.com/",
    "https://evil.com%2f.example.org/",
    " https://app.example.com/",
    "https://app.example.com\t.evil.com/",
    "https://app.example.com\n/",
    "https://app.exаmple.com/",  # noqa: RUF001  (a Cyrillic a: a look-alike host)
    "https://app.example.com:99999/",
    "https://[::1]/",
    "https:///evil.com",
    "/account",  # relative: refused too (the default is used, which is the same)
    "",
]


@pytest.mark.parametrize("rd", ALLOWED_RD)
def test_allowed_redirects_are_kept(rd: str) -> None:
    settings = settings_mod.Settings(allowed_redirect_domains=ALLOWED)
    assert pages.safe_redirect(settings, rd) == rd


@pytest.mark.parametrize("rd", REFUSED_RD)
def test_attack_redirects_are_refused(rd: str) -> None:
    settings = settings_mod.Settings(allowed_redirect_domains=ALLOWED)
    assert pages.safe_redirect(settings, rd) is None


@pytest.mark.parametrize("rd", ["https://app.example.com/back", "https://x.example.org/"])
async def test_signing_in_returns_to_an_allowed_rd(client: Client, inbox: Inbox, rd: str) -> None:
    account = await signed_up(client, inbox, "fay@example.com")
    client.session.cookie_jar.clear()
    response, page = await get(client, f"/login?{urllib.parse.urlencode({'rd': rd})}")
    assert page.form("/login").fields["rd"] == rd
    response, _ = await submit(client, page, "/login", login=account.email, password=PASSWORD)
    assert (response.status, response.headers["Location"]) == (303, rd)
    # Already signed in: straight there.
    response, _ = await get(client, f"/login?{urllib.parse.urlencode({'rd': rd})}")
    assert (response.status, response.headers["Location"]) == (303, rd)


@pytest.mark.parametrize(
    "rd",
    [
        "//evil.com",
        "https://evil.com/",
        "javascript:alert(1)",
        "https://app.example.com@evil.com/",
        "https://evil.com\\@app.example.com/",
        "/\\evil.com",
    ],
)
async def test_signing_in_ignores_a_refused_rd(client: Client, inbox: Inbox, rd: str) -> None:
    account = await signed_up(client, inbox, "gus@example.com")
    client.session.cookie_jar.clear()
    _, page = await get(client, f"/login?{urllib.parse.urlencode({'rd': rd})}")
    assert "rd" not in page.form("/login").fields
    # Posted straight into the form, as an attacker's page would: ignored as well.
    response, _ = await submit(
        client, page, "/login", login=account.email, password=PASSWORD, rd=rd
    )
    assert (response.status, response.headers["Location"]) == (303, "/account")


# --- CSRF ---------------------------------------------------------------------------


async def test_forms_without_a_matching_csrf_token_are_refused(
    *,
    client: Client,
    inbox: Inbox,
    store: Store,
    aiohttp_client: MakeClient,
    make_app: MakeApp,
    settings: settings_mod.Settings,
) -> None:
    account = await signed_up(client, inbox, "hal@example.com")
    client.session.cookie_jar.clear()
    sessions = await session_count(store, account)
    _, page = await get(client, "/login")
    good = {"login": account.email, "password": PASSWORD}

    missing = await client.post("/login", data=good, allow_redirects=False)
    other_browser = await aiohttp_client(make_app(settings))
    _, foreign = await get(other_browser, "/login")
    mismatched = await client.post(
        "/login",
        data={**good, "csrf_token": foreign.form("/login").fields["csrf_token"]},
        allow_redirects=False,
    )
    cross_origin = await client.post(
        "/login",
        data={**good, "csrf_token": page.form("/login").fields["csrf_token"]},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    as_json = await client.post("/login", json=good, allow_redirects=False)
    for response in (missing, mismatched, cross_origin, as_json):
        assert response.status == 403
        refused = Page(await response.text())
        assert_html_page(response, refused)
        assert "could not be accepted" in refused.text
        assert "authgate_session" not in response.cookies
    assert await session_count(store, account) == sessions
    reasons = [e.details["reason"] for e in await store.audit.query(event="csrf")]
    assert sorted(reasons) == sorted(["token_mismatch"] * 3 + ["foreign_origin"])

    # The browser that lost its cookie is refused, then works after reloading the page.
    token = page.form("/login").fields["csrf_token"]
    client.session.cookie_jar.clear()
    no_cookie = await client.post("/login", data={**good, "csrf_token": token})
    assert no_cookie.status == 403
    _, page = await get(client, "/login")
    same_origin = await client.post(
        "/login",
        data={**good, "csrf_token": page.form("/login").fields["csrf_token"]},
        headers={"Origin": ISSUER_ORIGIN},
        allow_redirects=False,
    )
    assert same_origin.status == 303


# --- sign out -----------------------------------------------------------------------


async def test_signing_out_needs_the_button_not_just_a_visit(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "ivy@example.com")
    client.session.cookie_jar.clear()
    await sign_in(client, account)
    sessions = await session_count(store, account)
    response, page = await get(client, "/logout")
    assert response.status == 200
    assert_html_page(response, page)
    assert "ivy@example.com" in page.text
    assert await session_count(store, account) == sessions  # a GET signs nobody out

    response, page = await submit(client, page, "/logout")
    assert response.status == 200
    assert "You have signed out." in page.text
    assert response.cookies["authgate_session"].value == ""
    assert await session_count(store, account) == sessions - 1
    response, _ = await get(client, "/account")
    assert (response.status, response.headers["Location"]) == (303, "/login")
    response, page = await get(client, "/logout")
    assert "You are not signed in." in page.text


# --- password recovery --------------------------------------------------------------


async def test_forgot_and_reset_password_through_the_real_inbox(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await signed_up(client, inbox, "jo@example.com")
    client.session.cookie_jar.clear()
    _, page = await get(client, "/forgot-password")
    assert page.inputs["email"]["autocomplete"] == "email"
    known, known_page = await submit(client, page, "/forgot-password", email=account.email)
    unknown, unknown_page = await submit(
        client, page, "/forgot-password", email="nobody@example.com"
    )
    assert known.status == unknown.status == 200
    assert known_page.text.replace(account.email, "X") == unknown_page.text.replace(
        "nobody@example.com", "X"
    )
    token = await inbox.token(account.email)
    assert inbox.to("nobody@example.com") == []

    response, page = await get(client, f"/reset-password?token={token}")
    assert response.status == 200
    assert_html_page(response, page)
    assert page.inputs["new_password"]["autocomplete"] == "new-password"
    new_password = "a whole new horse battery 77"
    mismatch, page = await submit(
        client,
        page,
        "/reset-password",
        new_password=new_password,
        confirm_password=new_password + "x",
    )
    assert mismatch.status == 400
    assert page.error_of("confirm_password")
    weak, page = await submit(
        client, page, "/reset-password", new_password="short", confirm_password="short"
    )
    assert weak.status == 400
    assert page.error_of("new_password")
    assert "The password needs at least 12 characters." in page.text

    done, page = await submit(
        client,
        page,
        "/reset-password",
        new_password=new_password,
        confirm_password=new_password,
    )
    assert done.status == 200, page.text
    assert "Your password has been changed" in page.text
    response, _ = await sign_in(client, Account(account.id, account.email, new_password), rd=None)
    assert response.status == 303
    # The link is spent.
    response, page = await get(client, f"/reset-password?token={token}")
    assert response.status == 400
    assert "invalid, was already used, or has expired" in page.text


async def test_bad_input_on_the_forgot_page_is_shown_not_sent(client: Client, inbox: Inbox) -> None:
    _, page = await get(client, "/forgot-password")
    response, page = await submit(client, page, "/forgot-password", email="not an address")
    assert response.status == 400
    assert page.error_of("email")
    assert inbox.messages == []


# --- email confirmation -------------------------------------------------------------


async def test_opening_the_verification_link_does_not_use_it_up(
    client: Client, inbox: Inbox, store: Store
) -> None:
    account = await register(client, inbox, "kai@example.com")
    token = await inbox.token(account.email)
    for _ in range(2):  # a mail scanner's prefetch, then the person
        response, form_page = await get(client, f"/verify-email?token={token}")
        assert response.status == 200
        assert_html_page(response, form_page)
    assert not (await store.users.get(account.id)).email_verified

    response, page = await submit(client, form_page, "/verify-email")
    assert response.status == 200
    assert "kai@example.com is confirmed" in page.text
    assert (await store.users.get(account.id)).email_verified
    again, page = await submit(client, form_page, "/verify-email")
    assert again.status == 400
    assert "invalid, was already used, or has expired" in page.text


@pytest.mark.parametrize("path", ["/verify-email?token=", "/verify-email?token=%3Cscript%3E"])
async def test_a_broken_verification_link_says_so(client: Client, path: str) -> None:
    response, page = await get(client, path)
    assert response.status == 400
    assert_html_page(response, page)
    assert "<script>" not in await response.text()
