-- Inserting a SIM is the hot path. The worker checks the device and the MNO
-- integration in the same transaction that inserts the SIM, and reference
-- data is never deleted (fixtures only insert and update), so the per-row
-- foreign key triggers on sims add cost and no safety.
ALTER TABLE sims DROP CONSTRAINT sims_device_id_fkey;
ALTER TABLE sims DROP CONSTRAINT sims_mno_integration_id_fkey;

---- create above / drop below ----
ALTER TABLE sims ADD CONSTRAINT sims_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id);
ALTER TABLE sims ADD CONSTRAINT sims_mno_integration_id_fkey FOREIGN KEY (mno_integration_id) REFERENCES mno_integrations (id);
