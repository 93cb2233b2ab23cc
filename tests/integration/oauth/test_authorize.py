"""The authorization endpoint: sign-in, prompt, max_age, consent, error redirects; the
password grant; introspection, revocation, userinfo and RP-initiated logout edges."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import jwt

from authgate.gateway import appkeys
from authgate.identity import domain, ids
from tests.integration.oauth import flows
from tests.integration.oauth.conftest import PASSWORD, Client, basic, register

REDIRECT = "https://app.example.com/callback"
LOGGED_OUT = "https://app.example.com/bye"


async def _web(client: Client, **extra: object) -> tuple[domain.OAuthClient, str]:
    registered, secret = await register(
        client,
        name="Orders",
        grant_types=["authorization_code", "refresh_token", "password"],
        redirect_uris=[REDIRECT],
        post_logout_redirect_uris=[LOGGED_OUT],
        scopes=["openid", "email", "profile", "orders:read"],
        **extra,
    )
    assert secret is not None
    return registered, secret


def _url(client_id: str, **params: str) -> str:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, **params}
    return "/oauth2/authorize?" + urllib.parse.urlencode(query)


async def test_a_browser_without_a_session_is_sent_to_sign_in_and_back(client: Client) -> None:
    web, _ = await _web(client)
    response = await client.get(
        _url(web.id, state="s1", login_hint="ada@example.com"), allow_redirects=False
    )
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith("/login?")
    back = flows.query_of(location)["rd"]
    assert back.startswith("http://127.0.0.1:8080/oauth2/authorize?")
    assert flows.query_of(back)["state"] == "s1"
    page = await (await client.get(location)).text()
    assert 'value="ada@example.com"' in page


async def test_prompt_none_without_a_session_is_login_required(client: Client) -> None:
    web, _ = await _web(client)
    response = await client.get(_url(web.id, state="s", prompt="none"), allow_redirects=False)
    query = flows.query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT)
    assert (query["error"], query["state"]) == ("login_required", "s")


async def test_consent_is_asked_once_then_remembered_and_prompt_consent_asks_again(
    client: Client,
) -> None:
    web, _ = await _web(client)
    await flows.sign_in_browser(client, "ann@example.com")
    page = await client.get(_url(web.id, scope="openid email"), allow_redirects=False)
    assert page.status == 200
    assert "Orders" in await page.text()
    assert "code" in flows.query_of(
        await flows.authorize(client, _url(web.id, scope="openid email"))
    )
    again = await client.get(_url(web.id, scope="openid email"), allow_redirects=False)
    assert again.status == 303  # remembered: straight back with a code
    assert "code" in flows.query_of(again.headers["Location"])
    more = await client.get(_url(web.id, scope="openid email profile"), allow_redirects=False)
    assert more.status == 200  # a new scope asks again
    forced = await client.get(_url(web.id, scope="openid", prompt="consent"), allow_redirects=False)
    assert forced.status == 200
    none = await client.get(
        _url(web.id, scope="openid profile", prompt="none"), allow_redirects=False
    )
    assert flows.query_of(none.headers["Location"])["error"] == "consent_required"


async def test_denying_consent_is_access_denied_with_state(client: Client) -> None:
    web, _ = await _web(client)
    await flows.sign_in_browser(client, "bob@example.com")
    location = await flows.authorize(client, _url(web.id, state="xyz"), consent="deny")
    query = flows.query_of(location)
    assert (query["error"], query["state"], query["iss"]) == (
        "access_denied",
        "xyz",
        "http://127.0.0.1:8080",
    )


async def test_a_trusted_client_skips_consent(client: Client) -> None:
    web, _ = await _web(client, trusted=True)
    await flows.sign_in_browser(client, "cat@example.com")
    response = await client.get(_url(web.id), allow_redirects=False)
    assert response.status == 303
    assert "code" in flows.query_of(response.headers["Location"])


async def test_prompt_login_and_max_age_ask_for_a_fresh_sign_in(client: Client) -> None:
    web, _ = await _web(client, trusted=True)
    await flows.sign_in_browser(client, "dan@example.com")
    for params in ({"prompt": "login"}, {"max_age": "0"}):
        response = await client.get(_url(web.id, **params), allow_redirects=False)
        location = response.headers["Location"]
        assert location.startswith("/login?"), params
        query = flows.query_of(location)
        assert query["prompt"] == "login"
        assert "prompt=login" not in query["rd"]  # coming back must not loop


async def test_request_errors_go_back_to_the_client_with_state(client: Client) -> None:
    web, _ = await _web(client)
    for params, error in (
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "admin"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"resource": "https://elsewhere.example"}, "invalid_target"),
    ):
        response = await client.get(_url(web.id, state="st", **params), allow_redirects=False)
        query = flows.query_of(response.headers["Location"])
        assert (query["error"], query["state"]) == (error, "st"), params


async def test_the_password_grant_works_only_when_enabled_and_without_mfa(client: Client) -> None:
    web, secret = await _web(client)
    await flows.sign_in_browser(client, "eve@example.com")
    form = {"grant_type": "password", "username": "eve@example.com", "password": PASSWORD}
    response = await client.post("/oauth2/token", data=form, headers=basic(web.id, secret))
    assert response.status == 200
    body = await response.json()
    assert "refresh_token" in body
    wrong = await client.post(
        "/oauth2/token", data={**form, "password": "nope"}, headers=basic(web.id, secret)
    )
    assert (wrong.status, (await wrong.json())["error"]) == (400, "invalid_grant")
    svc, svc_secret = await register(
        client, name="s", grant_types=["client_credentials"], scopes=["a"]
    )
    assert svc_secret is not None
    refused = await client.post("/oauth2/token", data=form, headers=basic(svc.id, svc_secret))
    assert (await refused.json())["error"] == "unauthorized_client"


async def test_revoking_an_access_token_and_foreign_tokens(client: Client) -> None:
    web, secret = await _web(client)
    other, other_secret = await _web(client)
    await flows.sign_in_browser(client, "fay@example.com")
    form = {"grant_type": "password", "username": "fay@example.com", "password": PASSWORD}
    tokens = await (
        await client.post("/oauth2/token", data=form, headers=basic(web.id, secret))
    ).json()
    # Another client cannot revoke it: 200, and nothing happens.
    foreign = await client.post(
        "/oauth2/revoke",
        data={"token": tokens["access_token"]},
        headers=basic(other.id, other_secret),
    )
    assert foreign.status == 200
    introspect = {"token": tokens["access_token"]}
    still = await client.post("/oauth2/introspect", data=introspect, headers=basic(web.id, secret))
    assert (await still.json())["active"] is True
    unknown = await client.post(
        "/oauth2/revoke", data={"token": "not-a-token"}, headers=basic(web.id, secret)
    )
    assert unknown.status == 200
    mine = await client.post(
        "/oauth2/revoke", data={"token": tokens["access_token"]}, headers=basic(web.id, secret)
    )
    assert mine.status == 200
    gone = await client.post("/oauth2/introspect", data=introspect, headers=basic(web.id, secret))
    assert await gone.json() == {"active": False}


async def test_public_clients_cannot_introspect(client: Client) -> None:
    spa, _ = await register(
        client, name="spa", grant_types=["authorization_code"], redirect_uris=[REDIRECT],
        scopes=["openid"], token_endpoint_auth_method="none",
    )  # fmt: skip
    response = await client.post("/oauth2/introspect", data={"token": "x", "client_id": spa.id})
    assert response.status in {400, 401}


async def test_userinfo_takes_get_and_post_and_needs_openid(client: Client) -> None:
    web, secret = await _web(client)
    await flows.sign_in_browser(client, "gus@example.com")
    form = {"grant_type": "password", "username": "gus@example.com", "password": PASSWORD}
    with_openid = await (
        await client.post(
            "/oauth2/token", data={**form, "scope": "openid profile"}, headers=basic(web.id, secret)
        )
    ).json()
    bearer = {"Authorization": f"Bearer {with_openid['access_token']}"}
    for method in ("GET", "POST"):
        response = await client.request(method, "/oauth2/userinfo", headers=bearer)
        assert response.status == 200
        assert "email" not in await response.json()  # the email scope was not granted
    without = await (
        await client.post(
            "/oauth2/token", data={**form, "scope": "orders:read"}, headers=basic(web.id, secret)
        )
    ).json()
    refused = await client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {without['access_token']}"}
    )
    assert refused.status == 401
    assert "invalid_token" in refused.headers["WWW-Authenticate"]


async def test_rp_initiated_logout_confirms_then_redirects_only_to_a_registered_uri(
    client: Client,
) -> None:
    web, secret = await _web(client, trusted=True)
    await flows.sign_in_browser(client, "hal@example.com")
    verifier, challenge = flows.pkce_pair()
    code = flows.query_of(
        await flows.authorize(
            client,
            _url(web.id, scope="openid", code_challenge=challenge, code_challenge_method="S256"),
        )
    )["code"]
    tokens = await (
        await client.post(
            "/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
            headers=basic(web.id, secret),
        )
    ).json()
    id_token = tokens["id_token"]
    assert jwt.decode(id_token, options={"verify_signature": False})["aud"] == web.id

    bad = await client.get(
        "/oauth2/logout?"
        + urllib.parse.urlencode(
            {"id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.example/"}
        )
    )
    assert bad.status == 400
    page = await client.get(
        "/oauth2/logout?"
        + urllib.parse.urlencode(
            {"id_token_hint": id_token, "post_logout_redirect_uri": LOGGED_OUT, "state": "bye"}
        )
    )
    assert page.status == 200
    [form] = flows.forms(await page.text())
    done = await client.post(form["action"], data=form["fields"], allow_redirects=False)
    assert done.status == 303
    assert done.headers["Location"] == f"{LOGGED_OUT}?state=bye"
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status == 401  # the session behind the tokens ended


async def test_an_id_token_says_mfa_when_the_session_used_a_second_factor(client: Client) -> None:
    web, secret = await _web(client, trusted=True)
    store = client.app[appkeys.STORE]
    user = await store.users.create(email="ivy@example.com", email_verified=True)
    cookie = ids.token()
    await store.sessions.create(
        ids.token_hash(cookie), user.id, amr=("pwd", "otp", "mfa"), ttl=dt.timedelta(hours=1)
    )
    client.session.cookie_jar.update_cookies({"authgate_session": cookie})
    verifier, challenge = flows.pkce_pair()
    location = await flows.authorize(
        client, _url(web.id, scope="openid", code_challenge=challenge, code_challenge_method="S256")
    )
    form = {"grant_type": "authorization_code", "code": flows.query_of(location)["code"]}
    tokens = await (
        await client.post(
            "/oauth2/token", data={**form, "code_verifier": verifier}, headers=basic(web.id, secret)
        )
    ).json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["sub"] == user.id
