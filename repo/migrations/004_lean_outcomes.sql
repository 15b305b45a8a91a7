-- Event ids are UUIDv7s the worker generates: unique by construction. The
-- unique index cost an index insert per command on the hot path and guarded
-- against nothing the primary key on command_id does not.
ALTER TABLE processed_commands DROP CONSTRAINT processed_commands_event_id_key;

---- create above / drop below ----
ALTER TABLE processed_commands ADD CONSTRAINT processed_commands_event_id_key UNIQUE (event_id);
