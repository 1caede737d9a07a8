//! The server's figures, from `/proc` (Linux), and percentiles.

/// `/proc/PID/stat` counts CPU time in clock ticks of `USER_HZ`, which is
/// 100 on every Linux architecture (`sysconf(_SC_CLK_TCK)`).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// The server process.
pub struct Process(pub u32);

impl Process {
    /// Resident set size (`VmRSS`), in KiB.
    pub fn rss_kb(&self) -> Result<u64, String> {
        let status = self.read("status")?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no VmRSS in /proc/{}/status", self.0))
    }

    /// CPU time so far, user and system, in clock ticks.
    pub fn cpu_ticks(&self) -> Result<u64, String> {
        let stat = self.read("stat")?;
        // The fields after the command name, which is in parentheses and
        // may hold spaces: state is field 3, utime and stime 14 and 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let tick = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
        tick(14)
            .zip(tick(15))
            .map(|(user, system)| user + system)
            .ok_or_else(|| format!("unreadable /proc/{}/stat", self.0))
    }

    fn read(&self, file: &str) -> Result<String, String> {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.0))
            .map_err(|e| format!("the server (pid {}) is gone? /proc/{}/{file}: {e}", self.0, self.0))
    }
}

/// The nearest-rank `q` quantile (0 < q ≤ 1) of sorted values; 0 if none.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 50);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&values, 1.0), 100);
        assert_eq!(percentile(&[7], 0.01), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn reads_its_own_process() {
        let me = Process(std::process::id());
        assert!(me.rss_kb().unwrap() > 0);
        me.cpu_ticks().unwrap();
    }
}
