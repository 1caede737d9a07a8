-- MySQL/MariaDB variant of ../0001_app_migrations.sql: a key cannot be a
-- TEXT column there, so the app name is a VARCHAR.
CREATE TABLE IF NOT EXISTS crabcat_app_migrations (
    app         VARCHAR(255) NOT NULL,
    version     BIGINT       NOT NULL,
    description TEXT         NOT NULL,
    checksum    TEXT         NOT NULL,
    applied_at  BIGINT       NOT NULL,
    PRIMARY KEY (app, version)
);
