-- The SIM table: one row per SIM, columns named as the fields of sim.created data.
CREATE TABLE sims (
    id                     uuid PRIMARY KEY,
    company_id             text NOT NULL,
    device_id              text NOT NULL REFERENCES devices (id),
    mno_integration_id     text REFERENCES mno_integrations (id),
    iccid                  text NOT NULL,
    msisdn                 text,
    status                 text NOT NULL,
    communication_plan     text,
    rate_plan              text,
    sim_metadata           jsonb NOT NULL DEFAULT '{}',
    ctd_data_usage         bigint NOT NULL DEFAULT 0,
    ctd_sms_usage          bigint NOT NULL DEFAULT 0,
    included_usage         bigint NOT NULL DEFAULT 0,
    overage_limit_reached  boolean NOT NULL DEFAULT false,
    sim_barred             boolean NOT NULL DEFAULT false,
    last_sync_at           timestamptz,
    created_at             timestamptz NOT NULL,
    created_by             text NOT NULL,
    updated_at             timestamptz NOT NULL,
    updated_by             text NOT NULL,
    -- The constraint, not a prior SELECT, keeps ICCIDs unique when workers race.
    CONSTRAINT sims_iccid_key UNIQUE (iccid)
);
CREATE INDEX sims_device_id_idx ON sims (device_id);
CREATE INDEX sims_company_id_idx ON sims (company_id);

-- Every command id with its one outcome, stored byte for byte: a redelivered or
-- replayed command re-publishes this event unchanged. PostgreSQL, not the
-- event stream, is the system of record for outcomes.
CREATE TABLE processed_commands (
    command_id    text PRIMARY KEY,
    event_id      uuid UNIQUE,
    event_type    text,
    status        integer,
    code          text,
    sim_id        uuid,
    event         bytea,
    processed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_commands_processed_at_idx ON processed_commands (processed_at);

---- create above / drop below ----
DROP TABLE processed_commands, sims;
