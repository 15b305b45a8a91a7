-- Reference data owned by other platform services, loaded by `simctl fixtures load`.
CREATE TABLE companies (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    -- Deferred so a fixtures file may list a child before its parent.
    parent_id  text REFERENCES companies (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX companies_parent_id_idx ON companies (parent_id);

CREATE TABLE users (
    id    text PRIMARY KEY,
    name  text NOT NULL
);

CREATE TABLE grants (
    user_id     text NOT NULL REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED,
    company_id  text NOT NULL REFERENCES companies (id) DEFERRABLE INITIALLY DEFERRED,
    permission  text NOT NULL,
    PRIMARY KEY (user_id, permission, company_id)
);

CREATE TABLE devices (
    id          text PRIMARY KEY,
    company_id  text NOT NULL REFERENCES companies (id) DEFERRABLE INITIALLY DEFERRED,
    name        text NOT NULL
);

CREATE TABLE mno_integrations (
    id          text PRIMARY KEY,
    company_id  text NOT NULL REFERENCES companies (id) DEFERRABLE INITIALLY DEFERRED,
    name        text NOT NULL
);

---- create above / drop below ----
DROP TABLE mno_integrations, devices, grants, users, companies;
