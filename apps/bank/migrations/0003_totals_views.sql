-- The totals as BIGINT on every backend, so the queries stay the same:
-- SUM(BIGINT) is NUMERIC on PostgreSQL and DECIMAL on MySQL, and the cast
-- back is spelled differently there (see the .mysql.sql variant).
CREATE VIEW bank_totals AS
    SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS total, COUNT(*) AS accounts FROM bank_accounts;

CREATE VIEW bank_audit_totals AS
    SELECT COUNT(*) AS transfers, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS volume FROM bank_audit;
