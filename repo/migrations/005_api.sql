-- The HTTP API's own tables. A token is kept only as the SHA-256 of its
-- secret; the id before the dot in a token finds its row.
CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id),
    name        text NOT NULL DEFAULT '',
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

-- Every command the API made: whose it is, the key it was made under (none
-- for a request without Idempotency-Key) and the hash of the body, so that a
-- key's reuse with another body is refused and no user reads another's
-- command, across API processes and restarts.
CREATE TABLE api_commands (
    command_id       text PRIMARY KEY,
    user_id          text NOT NULL,
    idempotency_key  text,
    body_hash        bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_commands_user_key UNIQUE (user_id, idempotency_key)
);

---- create above / drop below ----
DROP TABLE api_commands, api_tokens;
