-- +goose Up
-- OAuth2 clients: an app's AppKey is its client_id (its SECRET the client
-- secret, kept by the marketplace); the redirect URIs are registered here.
CREATE TABLE oauth_clients (
    app_key       text        PRIMARY KEY,
    redirect_uris text[]      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Authorization codes, access and refresh tokens, stored by the HMAC
-- signature of the token (never the token itself). request_id ties the
-- tokens of one grant together (revocation, code replay).
CREATE TABLE oauth_tokens (
    signature      text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('code', 'access', 'refresh')),
    request_id     text        NOT NULL,
    client_id      text        NOT NULL,
    subject        text        NOT NULL,
    requested_at   timestamptz NOT NULL,
    scopes         text[]      NOT NULL,
    granted_scopes text[]      NOT NULL,
    form           text        NOT NULL,
    session        jsonb       NOT NULL,
    active         boolean     NOT NULL DEFAULT true,
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX oauth_tokens_request ON oauth_tokens (request_id);
CREATE INDEX oauth_tokens_expiry ON oauth_tokens (expires_at);

-- QR-code logins (扫码登陆): a code shown on a waiting page, approved by an
-- already logged-in store session; the waiting page then receives a session
-- of its own once (claimed).
CREATE TABLE oauth_qr_logins (
    id          text        PRIMARY KEY,
    poll_hash   bytea       NOT NULL,
    state       text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'denied', 'claimed')),
    user_id     bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX oauth_qr_logins_expiry ON oauth_qr_logins (expires_at);

-- +goose Down
DROP TABLE oauth_qr_logins;
DROP TABLE oauth_tokens;
DROP TABLE oauth_clients;
