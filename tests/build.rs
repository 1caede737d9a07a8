//! The PostgreSQL tests run when `CRABCAT_TEST_POSTGRES_URL` is set at
//! build time of the tests (as `scripts/test.sh` and `.ci/run` do), and
//! are reported as ignored otherwise, rather than passing without running.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=CRABCAT_TEST_POSTGRES_URL");
    if std::env::var("CRABCAT_TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
