//! Forwards the `log` crate's records to the container's log.

use log::{LevelFilter, Log, Metadata, Record};

use crate::abi::{LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_TRACE, LOG_WARN};
use crate::ffi::host;

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

impl Log for HostLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => LOG_ERROR,
            log::Level::Warn => LOG_WARN,
            log::Level::Info => LOG_INFO,
            log::Level::Debug => LOG_DEBUG,
            log::Level::Trace => LOG_TRACE,
        };
        let message = record.args().to_string();
        host::log(level, record.target(), &message);
    }

    fn flush(&self) {}
}

/// Installs the forwarding logger (once per image) and sets the level the
/// container asked for (`info` if it did not say).
pub(crate) fn install(max_level: Option<&str>) {
    let _ = log::set_logger(&LOGGER);
    let level = max_level.and_then(|l| l.parse().ok()).unwrap_or(LevelFilter::Info);
    log::set_max_level(level);
}
