//! The standard `process_*` metrics (resident memory, open files, CPU),
//! read from `/proc/self` at each scrape, so they cost nothing between
//! scrapes.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Reads `/proc/self` when a scrape asks.
#[derive(Debug)]
pub(super) struct ProcessCollector {
    /// Clock ticks per second, for `utime`/`stime`.
    ticks: f64,
    /// Bytes per page, for `rss`.
    page: f64,
}

/// What one reading of `/proc/self/stat` says.
struct Stat {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
}

impl ProcessCollector {
    pub(super) fn new() -> Self {
        // SAFETY: sysconf only reads system configuration.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Self {
            ticks: if ticks > 0 { ticks as f64 } else { 100.0 },
            page: if page > 0 { page as f64 } else { 4096.0 },
        }
    }

    fn stat(&self) -> Option<Stat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may hold spaces; the fields start after its ')'.
        let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
        // Numbered from 1 in proc(5): state is 3, so field n is fields[n - 3].
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        Some(Stat {
            cpu_seconds: (field(14)? + field(15)?) / self.ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * self.page,
        })
    }
}

fn open_fds() -> Option<i64> {
    let count = std::fs::read_dir("/proc/self/fd").ok()?.count();
    // The directory handle itself is one of the entries counted.
    i64::try_from(count.saturating_sub(1)).ok()
}

fn max_fds() -> Option<i64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass and nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    ok.then(|| i64::try_from(limit.rlim_cur).unwrap_or(i64::MAX))
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(stat) = self.stat() {
            let cpu = ConstCounter::new(stat.cpu_seconds);
            let help = "Total user and system CPU time spent";
            let unit = Some(&Unit::Seconds);
            cpu.encode(encoder.encode_descriptor("process_cpu", help, unit, cpu.metric_type())?)?;
            let bytes = Some(&Unit::Bytes);
            for (name, help, value) in [
                (
                    "process_resident_memory",
                    "Resident memory size",
                    stat.resident_bytes,
                ),
                (
                    "process_virtual_memory",
                    "Virtual memory size",
                    stat.virtual_bytes,
                ),
            ] {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    bytes,
                    gauge.metric_type(),
                )?)?;
            }
        }
        for (name, help, value) in [
            ("process_open_fds", "Open file descriptors", open_fds()),
            (
                "process_max_fds",
                "Maximum open file descriptors",
                max_fds(),
            ),
        ] {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_can_be_read() {
        let collector = ProcessCollector::new();
        let stat = collector.stat().expect("/proc/self/stat parses");
        assert!(stat.resident_bytes > 0.0);
        assert!(stat.cpu_seconds >= 0.0);
        assert!(open_fds().expect("fds counted") >= 3);
        assert!(max_fds().expect("limit read") > 0);
    }
}
