-- HTTP sessions, kept by the container for its apps (on the datasource
-- `sessions.datasource` names; the tables exist on every datasource). A
-- session is found by the SHA-256 of its id, never by the id itself: the
-- table holds no cookie a reader could replay. Times are Unix milliseconds.
CREATE TABLE IF NOT EXISTS crabcat_sessions (
    id_hash     VARCHAR(64)  NOT NULL PRIMARY KEY,
    app         VARCHAR(255) NOT NULL,
    created_at  BIGINT       NOT NULL,
    accessed_at BIGINT       NOT NULL,
    expires_at  BIGINT       NOT NULL
);
CREATE INDEX IF NOT EXISTS crabcat_sessions_expiry ON crabcat_sessions (expires_at);
CREATE INDEX IF NOT EXISTS crabcat_sessions_app ON crabcat_sessions (app, expires_at);
-- One row per attribute: concurrent requests of one session each write
-- only the attributes they changed (the last write of an attribute wins).
CREATE TABLE IF NOT EXISTS crabcat_session_values (
    id_hash VARCHAR(64)  NOT NULL,
    name    VARCHAR(255) NOT NULL,
    value   TEXT         NOT NULL,
    PRIMARY KEY (id_hash, name)
);
