-- +goose Up
-- One row per capability call an app made. Append-only.
CREATE TABLE audit_records (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL,
    invocation_id text        NOT NULL,
    app           text        NOT NULL,
    app_version   text        NOT NULL,
    user_id       text        NOT NULL,
    capability    text        NOT NULL,
    function_name text        NOT NULL,
    code          text        NOT NULL,
    duration_ns   bigint      NOT NULL
);
CREATE INDEX audit_records_app_at ON audit_records (app, at);
CREATE INDEX audit_records_invocation ON audit_records (invocation_id);

-- +goose Down
DROP TABLE audit_records;
