"""Organizations, their members and roles, and "may this user do X": ``/orgs``,
``/users/me/permissions`` and ``/authz/check-permission``. The paths are a contract
(issue 3).

Who may do what:

- any signed-in user may create an organization, and becomes its first member with the
  built-in ``admin`` role;
- members may read the organization, its members and its roles;
- changes need an *org-admin*: a member holding a role that grants
  ``authgate:org:admin``, or a global administrator (``user.is_admin``);
- to everyone else an organization does not exist: 404, never 403, so its id or slug
  cannot be probed.

An organization never loses its last org-admin through this API (409): nobody but a
global administrator could manage it again. Organizations and roles that a custom
resource manages (``owner`` set by the operator) are changed through the resource, not
here (409): the operator would put back whatever this API changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiohttp import web

from authgate.gateway import accounts, appkeys, audit, authn, errors, inputs, permissions
from authgate.identity import domain, ids
from authgate.identity import errors as store_errors
from authgate.identity.store import Store

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])")
ROLE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_PAGE = 500
MAX_EMAIL_DOMAINS = 50


def _no_org() -> errors.ApiError:
    # A fresh exception each time: one raised again and again would grow its traceback.
    return errors.not_found("no such organization")


# --- JSON shapes --------------------------------------------------------------------


def org_json(org: domain.Organization) -> dict[str, Any]:
    return {
        "id": org.id,
        "slug": org.slug,
        "display_name": org.display_name,
        "email_domains": list(org.email_domains),
        "managed_by": org.owner,
        "created_at": org.created_at.isoformat(),
        "updated_at": org.updated_at.isoformat(),
    }


def role_json(role: domain.Role) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "description": role.description,
        "permissions": list(role.permissions),
        "route_rules": [
            {"hosts": list(r.hosts), "paths": list(r.paths), "methods": list(r.methods)}
            for r in role.route_rules
        ],
        "builtin": role.name == permissions.ADMIN_ROLE,
        "managed_by": role.owner,
        "created_at": role.created_at.isoformat(),
        "updated_at": role.updated_at.isoformat(),
    }


def member_json(
    user: domain.User, membership: domain.Membership, roles: Iterable[domain.Role]
) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "username": user.username,
        "roles": [role.name for role in permissions.granted_by(roles, membership.role_ids)],
        "joined_at": membership.created_at.isoformat(),
    }


# --- finding things -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Access:
    """The caller's standing in one organization."""

    principal: authn.Principal
    org: domain.Organization
    roles: list[domain.Role]  # every role of the organization
    membership: domain.Membership | None
    admin: bool  # may change the organization


async def find_org(store: Store, ref: str) -> domain.Organization | None:
    """By id or slug; ``None`` for anything else, without a query for what cannot be
    either."""
    try:
        if ids.is_uuid(ref):
            return await store.orgs.get(ref)
        if SLUG.fullmatch(ref):
            return await store.orgs.get_by_slug(ref)
    except store_errors.NotFound:
        pass
    return None


async def find_user(store: Store, ref: str) -> domain.User | None:
    """By id, email or user name (as a sign-in form takes them)."""
    try:
        if ids.is_uuid(ref):
            return await store.users.get(ref)
        if 0 < len(ref) <= inputs.EMAIL_MAX:
            return await store.users.find_by_login(ref)
    except store_errors.NotFound:
        pass
    return None


async def membership_of(store: Store, org_id: str, user_id: str) -> domain.Membership | None:
    try:
        memberships = await store.orgs.memberships_of(user_id)
    except store_errors.NotFound:  # the account was deleted meanwhile
        return None
    return next((m for m in memberships if m.org_id == org_id), None)


async def org_access(request: web.Request, *, admin: bool = False) -> Access:
    """Authenticate, find ``{org}`` and the caller's standing in it: 404 unless the
    caller is a member or a global administrator, 403 if ``admin`` is needed and the
    caller is not an org-admin."""
    principal = await authn.authenticate(request)
    store = request.app[appkeys.STORE]
    org = await find_org(store, request.match_info["org"])
    if org is None:
        raise _no_org()
    membership = await membership_of(store, org.id, principal.user.id)
    if membership is None and not principal.user.is_admin:
        raise _no_org()
    try:
        roles = await store.roles.list(org.id)
    except store_errors.NotFound:  # deleted meanwhile
        raise _no_org() from None
    held = permissions.granted_by(roles, membership.role_ids) if membership else []
    is_admin = principal.user.is_admin or permissions.is_org_admin(held)
    if admin and not is_admin:
        raise errors.ApiError(403, "forbidden", "this needs an administrator of the organization")
    return Access(principal, org, roles, membership, is_admin)


def _find_role(access: Access, ref: str) -> domain.Role:
    role = next((r for r in access.roles if r.id == ref.lower() or r.name == ref), None)
    if role is None:
        raise errors.not_found("no such role in this organization")
    return role


async def _find_member(
    request: web.Request, access: Access, ref: str
) -> tuple[domain.User, domain.Membership]:
    store = request.app[appkeys.STORE]
    user = await find_user(store, ref)
    membership = await membership_of(store, access.org.id, user.id) if user else None
    if user is None or membership is None:
        raise errors.not_found("no such member of this organization")
    return user, membership


async def _admin_ids(store: Store, org_id: str) -> set[str]:
    roles = await store.roles.list(org_id)
    return {
        m.user_id
        for m in await store.orgs.members(org_id)
        if permissions.is_org_admin(permissions.granted_by(roles, m.role_ids))
    }


@contextlib.asynccontextmanager
async def keeping_an_admin(store: Store, org_id: str) -> AsyncIterator[Store]:
    """A transaction for a change that may take away administrators (a member removed,
    a role revoked, changed or deleted): the change is made, the org-admins are counted
    again, and if the last one went the whole change is rolled back with 409.

    Counting after the change covers every way to lose the last admin at once -- even
    a custom role with ``authgate:*`` edited or deleted -- instead of a rule per
    endpoint. The named lock makes two concurrent removals of the last two admins take
    turns, so they cannot both see the other one still there.
    """
    async with store.transaction() as tx:
        await tx.db.lock(f"org-admins:{org_id}")
        had_admins = bool(await _admin_ids(tx, org_id))
        yield tx
        if had_admins and not await _admin_ids(tx, org_id):
            raise errors.ApiError(
                409,
                "conflict",
                "this would leave the organization without an administrator; "
                "make someone else an administrator first",
            )


def _managed(record: domain.Organization | domain.Role, what: str) -> errors.ApiError:
    return errors.ApiError(
        409,
        "conflict",
        f"this {what} is managed by the custom resource {record.owner}; change it there",
    )


# --- input --------------------------------------------------------------------------


def _only(body: inputs.JsonObject, allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise errors.invalid_request(f"unknown fields: {sorted(unknown)}")


def _slug(body: inputs.JsonObject) -> str:
    slug = inputs.required_str(body, "slug", max_length=63)
    # A slug shaped like a UUID could not be told from an id in /orgs/{id}.
    if not SLUG.fullmatch(slug) or ids.is_uuid(slug):
        raise errors.invalid_request(
            "slug takes 2 to 63 lower-case letters, digits and '-', not starting or "
            "ending with '-' (a DNS label)"
        )
    return slug


def _display_name(body: inputs.JsonObject) -> str:
    return inputs.required_str(body, "display_name", max_length=200)


def _email_domains(body: inputs.JsonObject) -> tuple[str, ...]:
    domains = []
    for item in inputs.field_str_list(body, "email_domains", max_items=MAX_EMAIL_DOMAINS):
        domain_name = item.lower().rstrip(".")
        labels = domain_name.split(".")
        if len(domain_name) > 253 or len(labels) < 2 or not all(map(_DNS_LABEL.fullmatch, labels)):
            raise errors.invalid_request(f"email_domains: {item[:80]!r} is not a domain name")
        domains.append(domain_name)
    return tuple(dict.fromkeys(domains))


def _role_name(body: inputs.JsonObject) -> str:
    name = inputs.required_str(body, "name", max_length=64)
    # Role names travel in tokens and in the comma-separated X-Auth-Roles header, and a
    # UUID-shaped one could not be told from an id in /roles/{role}.
    if not ROLE_NAME.fullmatch(name) or ids.is_uuid(name):
        raise errors.invalid_request(
            "name takes 1 to 64 lower-case letters, digits, '.', '_' or '-', starting and "
            "ending with a letter or digit"
        )
    return name


def _permissions(body: inputs.JsonObject) -> tuple[str, ...]:
    values = body.get("permissions", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise errors.invalid_request("permissions must be a list of strings")
    try:
        return permissions.parse_permissions(values)
    except permissions.InvalidPermission as invalid:
        raise errors.invalid_request(f"permissions: {invalid}") from None


def _route_rules(body: inputs.JsonObject) -> tuple[domain.RouteRule, ...]:
    try:
        return permissions.parse_route_rules(body.get("route_rules", []))
    except permissions.InvalidRouteRule as invalid:
        raise errors.invalid_request(str(invalid)) from None


def _check_builtin(name: str, granted: tuple[str, ...]) -> None:
    if name == permissions.ADMIN_ROLE and permissions.ORG_ADMIN not in granted:
        raise errors.ApiError(
            409, "conflict", f"the built-in admin role keeps the {permissions.ORG_ADMIN} permission"
        )


def query_cursor(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    if not ids.is_uuid(value):
        raise errors.invalid_request(f"{name} takes the id of the last item of the previous page")
    return value.lower()


def page(items: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The first ``limit`` items (of ``limit + 1`` fetched) and the cursor of the next
    page: the last id shown, or ``None`` when nothing follows."""
    shown = items[:limit]
    return shown, (shown[-1].id if len(items) > limit else None)


# --- organizations ------------------------------------------------------------------


async def create_org(request: web.Request) -> web.Response:
    """The organization, its ``admin`` role and the creator as its first admin, in one
    transaction: there is never an organization nobody can manage."""
    principal = await authn.authenticate(request)
    body = await inputs.read_json(request)
    _only(body, {"slug", "display_name", "email_domains"})
    slug = _slug(body)
    display_name = _display_name(body)
    email_domains = _email_domains(body)
    store = request.app[appkeys.STORE]
    try:
        async with store.transaction() as tx:
            org = await tx.orgs.create(slug, display_name, email_domains=email_domains)
            role = await tx.roles.create(
                org.id,
                permissions.ADMIN_ROLE,
                description="Administers the organization: its settings, members and roles.",
                permissions=(permissions.ORG_ADMIN,),
            )
            await tx.orgs.add_member(org.id, principal.user.id)
            await tx.orgs.grant_role(org.id, principal.user.id, role.id)
    except store_errors.AlreadyExists:
        raise errors.ApiError(409, "conflict", "that slug is taken") from None
    await audit.record(
        request,
        "org_change",
        "created",
        actor_id=principal.user.id,
        target=org.id,
        details={"slug": org.slug},
    )
    return web.json_response(org_json(org), status=201, headers={"Location": f"/orgs/{org.id}"})


async def list_orgs(request: web.Request) -> web.Response:
    """The caller's organizations; a global administrator's are all of them. Keyset
    pagination in id (creation) order: ``?after=<the last id seen>``."""
    principal = await authn.authenticate(request)
    after = query_cursor(request, "after")
    limit = inputs.query_int(request, "limit", default=100, maximum=MAX_PAGE)
    store = request.app[appkeys.STORE]
    if principal.user.is_admin:
        orgs = await store.orgs.list(after=after, limit=limit + 1)
    else:
        try:
            memberships = await store.orgs.memberships_of(principal.user.id)
        except store_errors.NotFound:
            memberships = []
        org_ids = sorted(m.org_id for m in memberships if after is None or m.org_id > after)
        orgs = []
        for org_id in org_ids[: limit + 1]:
            with contextlib.suppress(store_errors.NotFound):  # deleted meanwhile
                orgs.append(await store.orgs.get(org_id))
    shown, next_after = page(orgs, limit)
    return web.json_response({"orgs": [org_json(o) for o in shown], "next": next_after})


async def get_org(request: web.Request) -> web.Response:
    access = await org_access(request)
    return web.json_response(org_json(access.org))


async def patch_org(request: web.Request) -> web.Response:
    access = await org_access(request, admin=True)
    body = await inputs.read_json(request)
    _only(body, {"slug", "display_name", "email_domains"})
    changes: dict[str, Any] = {}
    if "slug" in body:
        changes["slug"] = _slug(body)
    if "display_name" in body:
        changes["display_name"] = _display_name(body)
    if "email_domains" in body:
        changes["email_domains"] = _email_domains(body)
    if access.org.owner:
        raise _managed(access.org, "organization")
    if not changes:
        return web.json_response(org_json(access.org))
    store = request.app[appkeys.STORE]
    try:
        org = await store.orgs.update(access.org.id, lambda o: dataclasses.replace(o, **changes))
    except store_errors.AlreadyExists:
        raise errors.ApiError(409, "conflict", "that slug is taken") from None
    except store_errors.NotFound:
        raise _no_org() from None
    await audit.record(
        request,
        "org_change",
        "updated",
        actor_id=access.principal.user.id,
        target=org.id,
        details={"slug": org.slug, "fields": sorted(changes)},
    )
    return web.json_response(org_json(org))


async def delete_org(request: web.Request) -> web.Response:
    """Delete the organization with its roles, memberships and grants. Sessions signed
    in to it end too, as when a member is removed: their tokens name it."""
    access = await org_access(request, admin=True)
    if access.org.owner:
        raise _managed(access.org, "organization")
    store = request.app[appkeys.STORE]
    # Read before deleting: the deletion detaches the sessions from the organization.
    signed_in = [
        session
        for member in await store.orgs.members(access.org.id)
        for session in await _org_sessions(request, member.user_id, access.org.id)
    ]
    try:
        await store.orgs.delete(access.org.id)
    except store_errors.NotFound:
        raise _no_org() from None
    for session in signed_in:
        await accounts.end_session(request, session, reason="org_deleted")
    await audit.record(
        request,
        "org_change",
        "deleted",
        actor_id=access.principal.user.id,
        target=access.org.id,
        details={"slug": access.org.slug},
    )
    return web.Response(status=204)


# --- members ------------------------------------------------------------------------


async def list_members(request: web.Request) -> web.Response:
    access = await org_access(request)
    store = request.app[appkeys.STORE]
    try:
        memberships = await store.orgs.members(access.org.id)
    except store_errors.NotFound:
        raise _no_org() from None
    users = await store.users.get_many([m.user_id for m in memberships])
    return web.json_response(
        {
            "members": [
                member_json(users[m.user_id], m, access.roles)
                for m in memberships
                if m.user_id in users
            ]
        }
    )


async def add_member(request: web.Request) -> web.Response:
    """Add an account, named by id, email or user name, without any role."""
    access = await org_access(request, admin=True)
    body = await inputs.read_json(request)
    _only(body, {"user"})
    ref = inputs.required_str(body, "user", max_length=inputs.EMAIL_MAX)
    store = request.app[appkeys.STORE]
    user = await find_user(store, ref)
    if user is None:
        raise errors.not_found("no such user")
    try:
        membership = await store.orgs.add_member(access.org.id, user.id)
    except store_errors.AlreadyExists:
        raise errors.ApiError(409, "conflict", "that user is a member already") from None
    except store_errors.NotFound:
        raise _no_org() from None
    await _audit(request, access, "membership_change", "added", user.id)
    return web.json_response(
        member_json(user, membership, access.roles),
        status=201,
        headers={"Location": f"/orgs/{access.org.id}/members/{user.id}"},
    )


async def remove_member(request: web.Request) -> web.Response:
    """``DELETE /orgs/{org}/members/{user}``."""
    return await _remove_member(request, request.match_info["user"])


async def remove_member_by_body(request: web.Request) -> web.Response:
    """``DELETE /orgs/{org}/members`` with ``{"user": ...}``: the same, for clients
    that address the member collection as the issue's contract lists it."""
    body = await inputs.read_json(request)
    return await _remove_member(request, inputs.required_str(body, "user", max_length=254))


async def _remove_member(request: web.Request, ref: str) -> web.Response:
    """Org-admins remove anyone; a member may leave. Sessions signed in to the
    organization end with the membership: their tokens name an organization the user
    is no longer in, and refreshing them would keep doing so."""
    access = await org_access(request)
    user, _ = await _find_member(request, access, ref)
    if user.id != access.principal.user.id and not access.admin:
        raise errors.ApiError(403, "forbidden", "this needs an administrator of the organization")
    store = request.app[appkeys.STORE]
    try:
        async with keeping_an_admin(store, access.org.id) as tx:
            await tx.orgs.remove_member(access.org.id, user.id)
    except store_errors.NotFound:
        raise errors.not_found("no such member of this organization") from None
    for session in await _org_sessions(request, user.id, access.org.id):
        await accounts.end_session(request, session, reason="membership_removed")
    await _audit(request, access, "membership_change", "removed", user.id)
    return web.Response(status=204)


async def _audit(
    request: web.Request, access: Access, event: str, outcome: str, target: str, **details: Any
) -> None:
    """A change inside an organization, by the caller, recorded with the organization."""
    await audit.record(
        request,
        event,
        outcome,
        actor_id=access.principal.user.id,
        target=target,
        details={"org": access.org.id, **details},
    )


async def _org_sessions(request: web.Request, user_id: str, org_id: str) -> list[domain.Session]:
    sessions = await request.app[appkeys.STORE].sessions.list_for_user(user_id)
    return [session for session in sessions if session.org_id == org_id]


async def grant_role(request: web.Request) -> web.Response:
    access = await org_access(request, admin=True)
    body = await inputs.read_json(request)
    _only(body, {"role"})
    role = _find_role(access, inputs.required_str(body, "role", max_length=64))
    user, membership = await _find_member(request, access, request.match_info["user"])
    if role.id not in membership.role_ids:
        store = request.app[appkeys.STORE]
        try:
            await store.orgs.grant_role(access.org.id, user.id, role.id)
        except (store_errors.NotFound, store_errors.Conflict):
            raise errors.not_found("no such member or role (changed meanwhile)") from None
        membership = dataclasses.replace(membership, role_ids=(*membership.role_ids, role.id))
        await _audit(request, access, "role_change", "granted", user.id, role=role.name)
    return web.json_response(member_json(user, membership, access.roles))


async def revoke_role(request: web.Request) -> web.Response:
    access = await org_access(request, admin=True)
    role = _find_role(access, request.match_info["role"])
    user, membership = await _find_member(request, access, request.match_info["user"])
    if role.id not in membership.role_ids:
        raise errors.not_found("that role is not granted to that member")
    store = request.app[appkeys.STORE]
    try:
        async with keeping_an_admin(store, access.org.id) as tx:
            await tx.orgs.revoke_role(access.org.id, user.id, role.id)
    except store_errors.NotFound:
        raise errors.not_found("that role is not granted to that member") from None
    await _audit(request, access, "role_change", "revoked", user.id, role=role.name)
    return web.Response(status=204)


# --- roles --------------------------------------------------------------------------


async def list_roles(request: web.Request) -> web.Response:
    access = await org_access(request)
    return web.json_response({"roles": [role_json(r) for r in access.roles]})


async def create_role(request: web.Request) -> web.Response:
    access = await org_access(request, admin=True)
    body = await inputs.read_json(request)
    _only(body, {"name", "description", "permissions", "route_rules"})
    name = _role_name(body)
    description = inputs.field_str(body, "description", required=False) or ""
    granted = _permissions(body)
    rules = _route_rules(body)
    _check_builtin(name, granted)
    store = request.app[appkeys.STORE]
    try:
        role = await store.roles.create(
            access.org.id, name, description=description, permissions=granted, route_rules=rules
        )
    except store_errors.AlreadyExists:
        raise errors.ApiError(409, "conflict", "a role with that name exists") from None
    except store_errors.NotFound:
        raise _no_org() from None
    await _audit(
        request,
        access,
        "role_change",
        "created",
        role.id,
        role=role.name,
        permissions=list(role.permissions),
    )
    return web.json_response(
        role_json(role),
        status=201,
        headers={"Location": f"/orgs/{access.org.id}/roles/{role.id}"},
    )


async def patch_role(request: web.Request) -> web.Response:
    access = await org_access(request, admin=True)
    role = _find_role(access, request.match_info["role"])
    body = await inputs.read_json(request)
    _only(body, {"name", "description", "permissions", "route_rules"})
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = _role_name(body)
    if "description" in body:
        changes["description"] = inputs.field_str(body, "description", required=False) or ""
    if "permissions" in body:
        changes["permissions"] = _permissions(body)
    if "route_rules" in body:
        changes["route_rules"] = _route_rules(body)
    if role.owner:
        raise _managed(role, "role")
    if role.name == permissions.ADMIN_ROLE and changes.get("name", role.name) != role.name:
        raise errors.ApiError(409, "conflict", "the built-in admin role cannot be renamed")
    _check_builtin(changes.get("name", role.name), changes.get("permissions", role.permissions))
    if not changes:
        return web.json_response(role_json(role))
    store = request.app[appkeys.STORE]
    try:
        async with keeping_an_admin(store, access.org.id) as tx:
            updated = await tx.roles.update(role.id, lambda r: dataclasses.replace(r, **changes))
    except store_errors.AlreadyExists:
        raise errors.ApiError(409, "conflict", "a role with that name exists") from None
    except store_errors.NotFound:
        raise errors.not_found("no such role in this organization") from None
    details: dict[str, Any] = {"role": updated.name, "fields": sorted(changes)}
    if "permissions" in changes:
        details["permissions"] = list(updated.permissions)
    await _audit(request, access, "role_change", "updated", role.id, **details)
    return web.json_response(role_json(updated))


async def delete_role(request: web.Request) -> web.Response:
    """Delete a role and every grant of it."""
    access = await org_access(request, admin=True)
    role = _find_role(access, request.match_info["role"])
    if role.owner:
        raise _managed(role, "role")
    if role.name == permissions.ADMIN_ROLE:
        raise errors.ApiError(409, "conflict", "the built-in admin role cannot be deleted")
    store = request.app[appkeys.STORE]
    try:
        async with keeping_an_admin(store, access.org.id) as tx:
            await tx.roles.delete(role.id)
    except store_errors.NotFound:
        raise errors.not_found("no such role in this organization") from None
    await _audit(request, access, "role_change", "deleted", role.id, role=role.name)
    return web.Response(status=204)


# --- "may this user do X" -----------------------------------------------------------


async def held_roles(store: Store, org_id: str, user_id: str) -> list[domain.Role]:
    membership = await membership_of(store, org_id, user_id)
    if membership is None:
        return []
    try:
        roles = await store.roles.list(org_id)
    except store_errors.NotFound:
        return []
    return permissions.granted_by(roles, membership.role_ids)


async def my_permissions(request: web.Request) -> web.Response:
    """The caller's roles and permissions in ``?org=`` (id or slug); an organization
    the caller cannot see is 404, as everywhere."""
    principal = await authn.authenticate(request)
    ref = request.query.get("org")
    if not ref:
        raise errors.invalid_request("org is required (the organization's id or slug)")
    store = request.app[appkeys.STORE]
    org = await find_org(store, ref) if len(ref) <= 128 else None
    if org is None:
        raise _no_org()
    membership = await membership_of(store, org.id, principal.user.id)
    if membership is None and not principal.user.is_admin:
        raise _no_org()
    roles = await held_roles(store, org.id, principal.user.id)
    return web.json_response(
        {
            "org": org.id,
            "roles": [role.name for role in roles],
            "permissions": permissions.effective(roles),
        }
    )


async def check_permission(request: web.Request) -> web.Response:
    """Whether ``user`` (the caller by default) holds ``permission`` in ``org``.

    Asking about someone else needs an org-admin of that organization (or a global
    administrator); anyone else is refused alike whether the organization and the user
    exist or not. Unknown organizations and users, and disabled accounts, are simply
    ``allowed: false``. The answer echoes the references as given, so it never turns a
    slug or an email into an id for someone who could not look it up.

    Only roles count: a global administrator manages authgate, and is not thereby
    allowed to do what an application's roles guard.
    """
    principal = await authn.authenticate(request)
    body = await inputs.read_json(request)
    _only(body, {"user", "org", "permission"})
    org_ref = inputs.required_str(body, "org", max_length=128)
    try:
        wanted = permissions.parse_permission(
            inputs.required_str(body, "permission", max_length=permissions.MAX_PERMISSION_LENGTH)
        )
    except permissions.InvalidPermission as invalid:
        raise errors.invalid_request(f"permission: {invalid}") from None
    user_ref = inputs.field_str(body, "user", required=False, max_length=inputs.EMAIL_MAX)
    if user_ref == "":
        raise errors.invalid_request("user is an id, email or user name; leave it out for yourself")
    store = request.app[appkeys.STORE]
    org = await find_org(store, org_ref)
    subject = principal.user if user_ref is None else await find_user(store, user_ref)
    if subject is None or subject.id != principal.user.id:
        caller_admin = principal.user.is_admin or (
            org is not None
            and permissions.is_org_admin(await held_roles(store, org.id, principal.user.id))
        )
        if not caller_admin:
            raise errors.ApiError(
                403,
                "forbidden",
                "asking about another user needs an administrator of the organization",
            )
    allowed = False
    if org is not None and subject is not None and not subject.disabled:
        roles = await held_roles(store, org.id, subject.id)
        allowed = permissions.allows(permissions.effective(roles), wanted)
    return web.json_response(
        {
            "allowed": allowed,
            "user": user_ref if user_ref is not None else principal.user.id,
            "org": org_ref,
            "permission": wanted,
        }
    )


def routes() -> list[web.RouteDef]:
    return [
        web.post("/orgs", create_org),
        web.get("/orgs", list_orgs),
        web.get("/orgs/{org}", get_org),
        web.patch("/orgs/{org}", patch_org),
        web.delete("/orgs/{org}", delete_org),
        web.get("/orgs/{org}/members", list_members),
        web.post("/orgs/{org}/members", add_member),
        web.delete("/orgs/{org}/members", remove_member_by_body),
        web.delete("/orgs/{org}/members/{user}", remove_member),
        web.post("/orgs/{org}/members/{user}/roles", grant_role),
        web.delete("/orgs/{org}/members/{user}/roles/{role}", revoke_role),
        web.get("/orgs/{org}/roles", list_roles),
        web.post("/orgs/{org}/roles", create_role),
        web.patch("/orgs/{org}/roles/{role}", patch_role),
        web.delete("/orgs/{org}/roles/{role}", delete_role),
        web.get("/users/me/permissions", my_permissions),
        web.post("/authz/check-permission", check_permission),
    ]
