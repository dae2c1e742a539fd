//! Host facts and kernel accounting for the report.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

/// `uname -r`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "?".into())
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    // SAFETY: timespec is plain old data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and out-pointer.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of this process, all threads (including those that exited), in ns. The kernel has no
/// IRQ time accounting on many configurations: softirq work done in a thread's context (veth
/// receive processing after a `sendmmsg`, for example) is then charged to that thread.
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread, in ns.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The per-CPU `ksoftirqd/N` threads: softirq work the kernel deferred out of the sender's
/// context runs there.
#[derive(Clone, Debug, Default)]
pub struct Ksoftirqd(Vec<std::path::PathBuf>);

impl Ksoftirqd {
    pub fn find() -> Ksoftirqd {
        let mut v = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let p = e.path();
                let is_ksoftirqd =
                    std::fs::read_to_string(p.join("comm")).map(|c| c.starts_with("ksoftirqd/")).unwrap_or(false);
                if is_ksoftirqd {
                    v.push(p.join("schedstat"));
                }
            }
        }
        Ksoftirqd(v)
    }

    /// Their summed run time in ns (first field of /proc/PID/schedstat).
    pub fn runtime_ns(&self) -> u64 {
        self.0
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|s| s.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()))
            .sum()
    }
}

/// One BPF map this process holds, with the kernel's memory accounting of it.
#[derive(Clone, Debug)]
pub struct MapMem {
    pub id: u32,
    pub name: String,
    pub max_entries: u64,
    /// `memlock` of /proc/self/fdinfo: the kernel's estimate of the map's memory use in bytes
    /// (`bpf_map_memory_usage` since Linux 6.4).
    pub memlock: u64,
}

/// Every BPF map this process has a descriptor of, by map id (several fds of one map count once).
pub fn process_maps() -> Result<BTreeMap<u32, MapMem>> {
    let mut out = BTreeMap::new();
    let dir = std::fs::read_dir("/proc/self/fdinfo").context("reading /proc/self/fdinfo")?;
    for e in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (Some(id), Some(memlock)) = (field("map_id"), field("memlock")) else { continue };
        let Ok(id) = u32::try_from(id) else { continue };
        let name = aya::maps::MapInfo::from_id(id)
            .ok()
            .and_then(|i| i.name_as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("map#{id}"));
        out.insert(id, MapMem { id, name, max_entries: field("max_entries").unwrap_or(0), memlock });
    }
    Ok(out)
}

/// /proc/loadavg's three load averages ("0.52 1.10 0.80").
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Date and time (UTC) to the minute, from the system clock ("2026-11-30 15:55").
pub fn now_utc() -> String {
    let t = guard::audit::rfc3339(std::time::SystemTime::now());
    format!("{} {}", &t[..10], &t[11..16])
}

/// A field of /proc/meminfo, in bytes.
fn meminfo(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb = s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(kb * 1024)
}

/// MemTotal of /proc/meminfo, e.g. "23.4 GiB".
pub fn mem_total() -> String {
    meminfo("MemTotal:").map(crate::bench::bytes).unwrap_or_else(|| "?".into())
}

/// MemAvailable of /proc/meminfo in bytes (0 if unknown).
pub fn mem_available() -> u64 {
    meminfo("MemAvailable:").unwrap_or(0)
}

/// One CPU's time from /proc/stat, in ns (USER_HZ ticks × 10 ms).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    /// Everything but idle and iowait.
    pub busy_ns: u64,
    pub softirq_ns: u64,
}

pub fn cpu_times(cpu: usize) -> Result<CpuTimes> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let tag = format!("cpu{cpu} ");
    let line = text.lines().find(|l| l.starts_with(&tag)).with_context(|| format!("no {tag}line in /proc/stat"))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ns = |ticks: u64| ticks * 1_000_000_000 / hz;
    let f = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = f(0) + f(1) + f(2) + f(5) + f(6) + f(7);
    Ok(CpuTimes { busy_ns: ns(busy), softirq_ns: ns(f(6)) })
}

/// User + system CPU time of process `pid`, in ns (from /proc/PID/stat).
pub fn proc_cpu_ns(pid: u32) -> Result<u64> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, utime 14, stime 15 (1-based in proc(5)) → indices 11, 12.
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok((ticks(11) + ticks(12)) * 1_000_000_000 / hz)
}

/// Set the calling thread's nice value (threads it spawns from now on inherit it). Best effort:
/// without the privilege the value simply stays.
pub fn set_nice(nice: i32) {
    // SAFETY: PRIO_PROCESS with who = 0 is the calling thread on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, nice);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_facts_are_well_formed() {
        let t = super::now_utc();
        let b = t.as_bytes();
        assert_eq!(t.len(), 16, "{t}");
        assert!(b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[13] == b':', "{t}");
        assert!(t.starts_with("20"), "{t}");
        assert!(super::mem_total().ends_with("iB"), "{}", super::mem_total());
        assert!(super::mem_available() > 0);
    }
}
