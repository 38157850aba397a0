//! What the benchmark reads from the kernel: the open-file limit it raises
//! at start, a process's memory (`/proc/<pid>/status`) and the CPU time
//! spent by one thread, a process, or a process and its children (nginx's
//! master and workers) from `/proc/<pid>/task/<tid>/schedstat`, nanoseconds
//! on the CPU, so every CPU figure is measured, never guessed, and the
//! daemon and the floor are measured by the same clock.

use std::fs;
use std::io;

/// The soft and hard `RLIMIT_NOFILE` after raising the soft limit to the hard.
pub fn raise_open_file_limit() -> io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// The calling thread's kernel id, to read its CPU time from any thread.
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// A memory line of `/proc/<pid>/status` (`"VmRSS"`, `"VmHWM"`), in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Nanoseconds one thread of this process has spent on a CPU.
pub fn thread_cpu_ns(tid: i32) -> u64 {
    let pid = std::process::id();
    schedstat_ns(&format!("/proc/{pid}/task/{tid}/schedstat")).unwrap_or(0)
}

/// Nanoseconds all threads of `pid` (alive now) have spent on a CPU.
pub fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| schedstat_ns(&format!("{}/schedstat", task.path().display())))
        .sum()
}

/// `pid` and its children (found by the parent pid in `/proc/*/stat`),
/// alive now.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let Ok(entries) = fs::read_dir("/proc") else {
        return tree;
    };
    for entry in entries.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if parent_pid(child) == Some(pid) {
            tree.push(child);
        }
    }
    tree
}

/// The parent pid of `pid`: the field after the state in `/proc/<pid>/stat`,
/// read after the last `)` since the command name may hold spaces.
fn parent_pid(pid: u32) -> Option<u32> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The first field of a `schedstat` file: time on the CPU, in ns.
fn schedstat_ns(path: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The gateway a leg goes through, whose CPU a probe reads.
#[derive(Debug, Clone, Copy)]
pub enum Gateway {
    /// One process, every thread of it (the daemon).
    Process(u32),
    /// A process and its children (nginx's master and its workers, which
    /// the master may replace, so they are looked up at every sample).
    Tree(u32),
}

impl Gateway {
    /// Nanoseconds its processes (alive now) have spent on a CPU.
    fn cpu_ns(self) -> u64 {
        match self {
            Gateway::Process(pid) => process_cpu_ns(pid),
            Gateway::Tree(pid) => process_tree(pid).into_iter().map(process_cpu_ns).sum(),
        }
    }
}

/// CPU time of the three parties of a run, read together.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    /// The load client's thread (this process's main thread).
    pub client_ns: u64,
    /// The fake provider's thread (in this process).
    pub fake_ns: u64,
    /// The gateway's processes: the daemon, or nginx for the floor.
    pub gateway_ns: u64,
}

/// Where to read [`CpuSample`]s from.
#[derive(Debug, Clone, Copy)]
pub struct CpuProbe {
    /// The load client's thread id.
    pub client_tid: i32,
    /// The fake provider's thread id.
    pub fake_tid: i32,
    /// The gateway in between, if there is one.
    pub gateway: Option<Gateway>,
}

impl CpuProbe {
    /// Reads all three counters now.
    pub fn sample(&self) -> CpuSample {
        CpuSample {
            client_ns: thread_cpu_ns(self.client_tid),
            fake_ns: thread_cpu_ns(self.fake_tid),
            gateway_ns: self.gateway.map_or(0, Gateway::cpu_ns),
        }
    }
}

impl CpuSample {
    /// The CPU spent between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuSample) -> CpuSample {
        CpuSample {
            client_ns: self.client_ns.saturating_sub(earlier.client_ns),
            fake_ns: self.fake_ns.saturating_sub(earlier.fake_ns),
            gateway_ns: self.gateway_ns.saturating_sub(earlier.gateway_ns),
        }
    }

    /// Adds another interval's CPU to this one.
    pub fn add(&mut self, other: &CpuSample) {
        self.client_ns += other.client_ns;
        self.fake_ns += other.fake_ns;
        self.gateway_ns += other.gateway_ns;
    }
}
