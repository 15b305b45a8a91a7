-- Attempts at deciding a command that was redelivered without the worker
-- having handed it back: it may have killed the worker that had it. Such a
-- command is decided alone, and its row marks the attempt in progress; a
-- row found still in progress at the next attempt is a crashed attempt.
-- attempt names the attempt in progress, so that a retried mark of the same
-- attempt (its first answer lost) is not taken for a crash. A row goes when
-- its command is decided, so the table stays small.
CREATE TABLE command_attempts (
    command_id  text PRIMARY KEY,
    crashes     integer NOT NULL DEFAULT 0,
    in_progress boolean NOT NULL DEFAULT true,
    attempt     text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----
DROP TABLE command_attempts;
