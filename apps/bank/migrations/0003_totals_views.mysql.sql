-- The totals views on MySQL/MariaDB, where a cast to BIGINT is spelled SIGNED.
CREATE VIEW bank_totals AS
    SELECT CAST(COALESCE(SUM(balance), 0) AS SIGNED) AS total, COUNT(*) AS accounts FROM bank_accounts;

CREATE VIEW bank_audit_totals AS
    SELECT COUNT(*) AS transfers, CAST(COALESCE(SUM(amount), 0) AS SIGNED) AS volume FROM bank_audit;
