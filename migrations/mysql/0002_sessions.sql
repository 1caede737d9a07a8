-- MySQL/MariaDB variant of ../0002_sessions.sql: no `CREATE INDEX IF NOT
-- EXISTS` on MySQL (the indexes are declared with the table), and a value
-- may be larger than `TEXT`'s 64 KiB.
CREATE TABLE IF NOT EXISTS crabcat_sessions (
    id_hash     VARCHAR(64)  NOT NULL PRIMARY KEY,
    app         VARCHAR(255) NOT NULL,
    created_at  BIGINT       NOT NULL,
    accessed_at BIGINT       NOT NULL,
    expires_at  BIGINT       NOT NULL,
    INDEX crabcat_sessions_expiry (expires_at),
    INDEX crabcat_sessions_app (app, expires_at)
);
CREATE TABLE IF NOT EXISTS crabcat_session_values (
    id_hash VARCHAR(64)  NOT NULL,
    name    VARCHAR(255) NOT NULL,
    value   MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (id_hash, name)
);
