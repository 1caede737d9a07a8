-- Accounts and the transfer audit trail (MySQL/MariaDB: a key cannot be
-- TEXT, and AUTO_INCREMENT makes the audit ids).
-- Balances and amounts are whole units, created_at is unix seconds.
CREATE TABLE bank_accounts (
    id VARCHAR(64) PRIMARY KEY,
    owner TEXT NOT NULL,
    balance BIGINT NOT NULL CHECK (balance >= 0)
);

CREATE TABLE bank_audit (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    from_account TEXT NOT NULL,
    to_account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
