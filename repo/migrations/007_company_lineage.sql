-- The company tree's one rule: a company is covered by itself and by each
-- of its ancestors. A grant on a company covers its descendants, and an MNO
-- integration of a company serves its descendants. company_lineage holds
-- every (company, ancestor) pair, the company itself included; every query
-- that needs the rule joins it (or grant_coverage, below), with an index
-- either way: up from a SIM's company to the grants that cover it, down from
-- a user's grants to the companies it covers.
CREATE TABLE company_lineage (
    company_id   text NOT NULL,
    ancestor_id  text NOT NULL,
    PRIMARY KEY (company_id, ancestor_id)
);
CREATE INDEX company_lineage_ancestor_id_idx ON company_lineage (ancestor_id, company_id);

-- The walk up the tree, written once: company_lineage is rebuilt whole after
-- each statement that changes companies, which are reference data, small and
-- rarely written. UNION (not UNION ALL) ends the walk even if the data holds
-- a cycle. The lock makes writers in concurrent transactions rebuild one
-- after the other, each seeing what the other committed; readers are never
-- blocked.
CREATE FUNCTION company_lineage_rebuild() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE company_lineage IN EXCLUSIVE MODE;
    DELETE FROM company_lineage;
    INSERT INTO company_lineage (company_id, ancestor_id)
    WITH RECURSIVE lineage(company_id, ancestor_id) AS (
        SELECT id, id FROM companies
        UNION
        SELECT l.company_id, c.parent_id FROM lineage l JOIN companies c ON c.id = l.ancestor_id
        WHERE c.parent_id IS NOT NULL
    )
    SELECT company_id, ancestor_id FROM lineage;
    RETURN NULL;
END $$;

CREATE TRIGGER companies_lineage AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON companies
    FOR EACH STATEMENT EXECUTE FUNCTION company_lineage_rebuild();

-- Who holds which permission on which company, a grant on a company covering
-- its descendants.
CREATE VIEW grant_coverage AS
    SELECT g.user_id, g.permission, l.company_id
    FROM grants g JOIN company_lineage l ON l.ancestor_id = g.company_id;

-- The companies already stored: an UPDATE that changes nothing fires the
-- trigger.
UPDATE companies SET id = id WHERE false;

---- create above / drop below ----
DROP VIEW grant_coverage;
DROP TRIGGER companies_lineage ON companies;
DROP FUNCTION company_lineage_rebuild();
DROP TABLE company_lineage;
