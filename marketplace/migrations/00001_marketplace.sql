-- +goose Up
-- Staff of the platform and developers' people: one login each.
CREATE TABLE mp_accounts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text        NOT NULL UNIQUE,
    name          text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('developer', 'reviewer', 'risk', 'admin')),
    password_hash text        NOT NULL,
    developer_id  bigint,
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A developer organisation (or person) that publishes apps.
CREATE TABLE mp_developers (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('individual', 'partner', 'merchant', 'channel', 'institution')),
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    level            text        NOT NULL DEFAULT 'basic',
    requested_level  text        NOT NULL DEFAULT 'basic',
    contact_phone    text        NOT NULL DEFAULT '',
    review_comment   text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE mp_accounts ADD FOREIGN KEY (developer_id) REFERENCES mp_developers (id);

-- Sessions of staff (kind 'staff') and store users (kind 'user'). Only the
-- SHA-256 of the token is kept.
CREATE TABLE mp_sessions (
    token_hash  bytea       PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('staff', 'user')),
    subject_id  bigint      NOT NULL,
    csrf        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX mp_sessions_subject ON mp_sessions (kind, subject_id);

CREATE TABLE mp_apps (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    developer_id    bigint      NOT NULL REFERENCES mp_developers (id),
    slug            text        NOT NULL UNIQUE,
    name            text        NOT NULL,
    icon            text        NOT NULL DEFAULT '',
    category        text        NOT NULL DEFAULT '',
    description     text        NOT NULL DEFAULT '',
    callback_url    text        NOT NULL DEFAULT '',
    qualification_url text      NOT NULL DEFAULT '',
    ip_whitelist    text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Credentials: an APPKEY per app and environment, with one or more secrets
-- (more than one only during a rotation's overlap). Secrets are AES-GCM
-- sealed with the master key.
CREATE TABLE mp_app_secrets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      bigint      NOT NULL REFERENCES mp_apps (id),
    env         text        NOT NULL CHECK (env IN ('sandbox', 'production')),
    appkey      text        NOT NULL,
    secret_enc  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);
CREATE INDEX mp_app_secrets_key ON mp_app_secrets (appkey);
CREATE INDEX mp_app_secrets_app ON mp_app_secrets (app_id, env);

CREATE TABLE mp_versions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id          bigint      NOT NULL REFERENCES mp_apps (id),
    version         text        NOT NULL,
    sha256          text        NOT NULL,
    size            bigint      NOT NULL,
    manifest        jsonb       NOT NULL,
    imports         text[]      NOT NULL DEFAULT '{}',
    status          text        NOT NULL CHECK (status IN ('check_failed', 'checked', 'in_review', 'approved', 'rejected')),
    report          jsonb       NOT NULL,
    review_comment  text        NOT NULL DEFAULT '',
    reviewed_by     bigint      REFERENCES mp_accounts (id),
    reviewed_at     timestamptz,
    uploaded_by     bigint      REFERENCES mp_accounts (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, version)
);
CREATE INDEX mp_versions_status ON mp_versions (status, created_at);

-- Releases: one row per rollout of a version. An app has at most one
-- active gray release and one stable (full) release at a time.
CREATE TABLE mp_releases (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id          bigint      NOT NULL REFERENCES mp_apps (id),
    version_id      bigint      NOT NULL REFERENCES mp_versions (id),
    previous_id     bigint      REFERENCES mp_versions (id),
    stage           text        NOT NULL CHECK (stage IN ('gray', 'full', 'rolled_back', 'superseded')),
    percent_bp      integer     NOT NULL CHECK (percent_bp BETWEEN 0 AND 10000),
    salt            text        NOT NULL,
    levels          integer[]   NOT NULL DEFAULT '{}',
    channels        text[]      NOT NULL DEFAULT '{}',
    regions         text[]      NOT NULL DEFAULT '{}',
    whitelist       text[]      NOT NULL DEFAULT '{}',
    reason          text        NOT NULL DEFAULT '',
    created_by      bigint      REFERENCES mp_accounts (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX mp_releases_one_gray ON mp_releases (app_id) WHERE stage = 'gray';
CREATE UNIQUE INDEX mp_releases_one_full ON mp_releases (app_id) WHERE stage = 'full';

-- End users of the store.
CREATE TABLE mp_users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone           text        NOT NULL UNIQUE,
    real_name       text        NOT NULL DEFAULT '',
    id_number_masked text       NOT NULL DEFAULT '',
    id_number_hash  bytea,
    verified_at     timestamptz,
    level           integer     NOT NULL DEFAULT 0,
    channel         text        NOT NULL DEFAULT '',
    region          text        NOT NULL DEFAULT '',
    segments        text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One-time login codes (hashed), one live code per phone.
CREATE TABLE mp_login_codes (
    phone       text        PRIMARY KEY,
    code_hash   bytea       NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE mp_installs (
    user_id      bigint      NOT NULL REFERENCES mp_users (id),
    app_id       bigint      NOT NULL REFERENCES mp_apps (id),
    installed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, app_id)
);

CREATE TABLE mp_consents (
    user_id     bigint      NOT NULL REFERENCES mp_users (id),
    app_id      bigint      NOT NULL REFERENCES mp_apps (id),
    scope       text        NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, app_id, scope)
);

-- Statistics per app, version, release stage and minute.
CREATE TABLE mp_stats (
    app_id       bigint      NOT NULL,
    version_id   bigint      NOT NULL,
    stage        text        NOT NULL,
    minute       timestamptz NOT NULL,
    invocations  bigint      NOT NULL DEFAULT 0,
    errors       bigint      NOT NULL DEFAULT 0,
    latency_sum_us bigint    NOT NULL DEFAULT 0,
    buckets      bigint[]    NOT NULL,
    PRIMARY KEY (app_id, version_id, stage, minute)
);

CREATE TABLE mp_active_users (
    app_id      bigint      NOT NULL,
    day         date        NOT NULL,
    user_ref    text        NOT NULL,
    version_id  bigint      NOT NULL,
    PRIMARY KEY (app_id, version_id, day, user_ref)
);

CREATE TABLE mp_payments (
    app_id      bigint      NOT NULL,
    version_id  bigint      NOT NULL,
    idem_key    text        NOT NULL,
    user_ref    text        NOT NULL,
    amount_fen  bigint      NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, idem_key)
);

-- Every reviewer, risk and admin action (and the system's automatic ones).
CREATE TABLE mp_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint,
    actor_role  text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL,
    detail      text        NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE mp_audit;
DROP TABLE mp_payments;
DROP TABLE mp_active_users;
DROP TABLE mp_stats;
DROP TABLE mp_consents;
DROP TABLE mp_installs;
DROP TABLE mp_login_codes;
DROP TABLE mp_users;
DROP TABLE mp_releases;
DROP TABLE mp_versions;
DROP TABLE mp_app_secrets;
DROP TABLE mp_apps;
DROP TABLE mp_sessions;
ALTER TABLE mp_accounts DROP CONSTRAINT IF EXISTS mp_accounts_developer_id_fkey;
DROP TABLE mp_developers;
DROP TABLE mp_accounts;
