-- The container's own schema, applied with sqlx's migrator on every
-- datasource an app uses: the record of each app's applied migrations.
CREATE TABLE IF NOT EXISTS crabcat_app_migrations (
    app         TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    description TEXT   NOT NULL,
    checksum    TEXT   NOT NULL,
    applied_at  BIGINT NOT NULL,
    PRIMARY KEY (app, version)
);
