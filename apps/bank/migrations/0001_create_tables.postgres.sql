-- Accounts and the transfer audit trail (PostgreSQL).
-- Balances and amounts are whole units, created_at is unix seconds.
CREATE TABLE bank_accounts (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    balance BIGINT NOT NULL CHECK (balance >= 0)
);

CREATE TABLE bank_audit (
    id BIGSERIAL PRIMARY KEY,
    from_account TEXT NOT NULL,
    to_account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
