-- The whole identity domain (SQLite twin of postgres/0001_initial.sql: same tables,
-- columns and constraints; PostgreSQL's type names select the read converters).
-- Secrets are stored as SHA-256 hashes (tokens, codes,
-- client secrets) or argon2id (passwords); TOTP secrets and private keys are
-- encrypted with the key-encryption key. Timestamps come from the application clock.

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    email_key       TEXT NOT NULL UNIQUE,          -- NFKC + casefold of email
    email_verified  BOOLEAN NOT NULL DEFAULT 0,
    username        TEXT,
    username_key    TEXT UNIQUE,                   -- NFKC + casefold of username
    full_name       TEXT NOT NULL DEFAULT '',
    is_admin        BOOLEAN NOT NULL DEFAULT 0,
    disabled        BOOLEAN NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL DEFAULT 1,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE password_credentials (
    user_id     TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hash        TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE mfa_factors (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('totp')),
    secret_enc       BLOB NOT NULL,
    confirmed_at     TIMESTAMPTZ,
    last_used_step   BIGINT,                       -- TOTP replay protection
    created_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, kind)
);

CREATE TABLE backup_codes (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, code_hash)
);

CREATE TABLE organizations (
    id             TEXT PRIMARY KEY,
    slug           TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    email_domains  JSONB NOT NULL DEFAULT '[]',
    owner          TEXT,                           -- e.g. the custom resource that manages it
    version        INTEGER NOT NULL DEFAULT 1,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,            -- SHA-256 of the cookie value
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id        TEXT REFERENCES organizations (id) ON DELETE SET NULL,
    amr           JSONB NOT NULL DEFAULT '[]',
    user_agent    TEXT NOT NULL DEFAULT '',
    ip            TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);

CREATE TABLE oauth_clients (
    id                          TEXT PRIMARY KEY,  -- the client_id
    name                        TEXT NOT NULL,
    secret_hash                 TEXT,              -- NULL for public clients
    public                      BOOLEAN NOT NULL DEFAULT 0,
    grant_types                 JSONB NOT NULL DEFAULT '[]',
    redirect_uris               JSONB NOT NULL DEFAULT '[]',
    post_logout_redirect_uris   JSONB NOT NULL DEFAULT '[]',
    scopes                      JSONB NOT NULL DEFAULT '[]',
    audience                    JSONB NOT NULL DEFAULT '[]',
    token_endpoint_auth_method  TEXT NOT NULL,
    access_token_ttl            INTEGER,
    refresh_token_ttl           INTEGER,
    id_token_ttl                INTEGER,
    trusted                     BOOLEAN NOT NULL DEFAULT 0,
    jwks                        JSONB,
    jwks_uri                    TEXT,
    owner                       TEXT,
    version                     INTEGER NOT NULL DEFAULT 1,
    created_at                  TIMESTAMPTZ NOT NULL,
    updated_at                  TIMESTAMPTZ NOT NULL
);

CREATE TABLE client_assertion_jtis (                -- private_key_jwt replay protection
    client_id   TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    jti         TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE TABLE refresh_token_families (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    session_id    TEXT REFERENCES sessions (id) ON DELETE SET NULL,
    org_id        TEXT REFERENCES organizations (id) ON DELETE SET NULL,
    scope         TEXT NOT NULL DEFAULT '',
    audience      JSONB NOT NULL DEFAULT '[]',
    amr           JSONB NOT NULL DEFAULT '[]',
    auth_time     TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX refresh_token_families_user ON refresh_token_families (user_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    issued_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ                        -- set when exchanged; reuse revokes the family
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE authorization_codes (
    code_hash              TEXT PRIMARY KEY,
    client_id              TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id                TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id             TEXT REFERENCES sessions (id) ON DELETE SET NULL,
    org_id                 TEXT REFERENCES organizations (id) ON DELETE SET NULL,
    redirect_uri           TEXT NOT NULL,
    scope                  TEXT NOT NULL DEFAULT '',
    nonce                  TEXT,
    code_challenge         TEXT,
    code_challenge_method  TEXT,
    audience               JSONB NOT NULL DEFAULT '[]',
    amr                    JSONB NOT NULL DEFAULT '[]',
    auth_time              TIMESTAMPTZ NOT NULL,
    created_at             TIMESTAMPTZ NOT NULL,
    expires_at             TIMESTAMPTZ NOT NULL,
    consumed_at            TIMESTAMPTZ,
    family_id              TEXT                    -- what the redemption issued, for replay revocation
);

CREATE TABLE consents (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scopes      JSONB NOT NULL DEFAULT '[]',
    granted_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE memberships (
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE roles (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    permissions  JSONB NOT NULL DEFAULT '[]',
    route_rules  JSONB NOT NULL DEFAULT '[]',
    owner        TEXT,
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE membership_roles (
    org_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    role_id     TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    granted_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, role_id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX membership_roles_role ON membership_roles (role_id);

CREATE TABLE signing_keys (
    kid              TEXT PRIMARY KEY,
    alg              TEXT NOT NULL,
    public_jwk       JSONB NOT NULL,
    private_key_enc  BLOB NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,             -- published in the JWKS from here
    signs_from       TIMESTAMPTZ NOT NULL,             -- selected for signing from here
    expires_at       TIMESTAMPTZ                       -- withdrawn from the JWKS from here
);
CREATE INDEX signing_keys_alg ON signing_keys (alg, signs_from);

CREATE TABLE email_tokens (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose      TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    email        TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    consumed_at  TIMESTAMPTZ
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

CREATE TABLE lockouts (
    subject          TEXT PRIMARY KEY,                 -- "user:<id>" or "ip:<address>"
    failures         INTEGER NOT NULL DEFAULT 0,
    window_start     TIMESTAMPTZ NOT NULL,
    locked_until     TIMESTAMPTZ,
    lock_count       INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    occurred_at  TIMESTAMPTZ NOT NULL,
    event        TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    actor_id     TEXT,                                 -- no foreign key: the trail outlives the account
    target       TEXT,
    ip           TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT '',
    request_id   TEXT NOT NULL DEFAULT '',
    details      JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_actor ON audit_events (actor_id, occurred_at);
CREATE INDEX audit_events_event ON audit_events (event, occurred_at);

CREATE TABLE revocations (
    kind        TEXT NOT NULL CHECK (kind IN ('jti', 'subject', 'client', 'family', 'session')),
    value       TEXT NOT NULL,
    revoked_at  TIMESTAMPTZ NOT NULL,    -- tokens of this kind/value issued before this are dead
    expires_at  TIMESTAMPTZ NOT NULL,    -- after this no token it could match is still valid
    PRIMARY KEY (kind, value)
);
CREATE INDEX revocations_expiry ON revocations (expires_at);

CREATE TABLE change_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT NOT NULL,
    key         TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX change_log_time ON change_log (created_at);
