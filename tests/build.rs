//! The PostgreSQL tests run when `CRABCAT_TEST_POSTGRES_URL` is set at
//! build time of the tests, the MySQL/MariaDB tests when
//! `CRABCAT_TEST_MYSQL_URL` is (as `scripts/test.sh` and `.ci/run` do);
//! each set is reported as ignored otherwise, rather than passing without
//! running.

fn main() {
    for (cfg, variable) in [
        ("postgres_tests", "CRABCAT_TEST_POSTGRES_URL"),
        ("mysql_tests", "CRABCAT_TEST_MYSQL_URL"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={variable}");
        if std::env::var(variable).is_ok_and(|url| !url.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
