//! How many CPUs the data plane's per-CPU budgets are split over.

/// The CPUs the data plane's per-CPU limits are split over: every online CPU, since any of them
/// may run the XDP program (the receive queues' interrupts go where the NIC sends them). Not the
/// CPUs this process may run on: under `taskset`, a unit's `CPUAffinity=` or a cgroup's
/// `AllowedCPUs=`, that count is smaller, the shares would be larger, and a scan spread over the
/// other CPUs would get the host-wide budget once per CPU.
pub fn online_cpus() -> u32 {
    match aya::util::online_cpus() {
        Ok(cpus) if !cpus.is_empty() => cpus.len() as u32,
        // Without sysfs, the scheduler's view is the best left; it can only be smaller.
        _ => std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
    }
}

/// One CPU's share of a host-wide budget split over `ncpus` (each CPU runs its own GCRA), at
/// least 1 so that no CPU admits nothing.
pub fn cpu_share(total: u64, ncpus: u32) -> u64 {
    (total / u64::from(ncpus.max(1))).max(1)
}

#[cfg(test)]
mod tests {
    use super::online_cpus;

    /// Counts the CPUs listed in `/sys/devices/system/cpu/online` ("0-3,6"), without aya.
    fn online_from_sysfs() -> u32 {
        let text = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("sysfs");
        text.trim()
            .split(',')
            .map(|r| match r.split_once('-') {
                Some((a, b)) => b.parse::<u32>().expect("cpu") - a.parse::<u32>().expect("cpu") + 1,
                None => 1,
            })
            .sum()
    }

    #[test]
    fn the_split_counts_online_cpus_not_the_ones_this_process_may_use() {
        let online = online_from_sysfs();
        // A thread pinned to CPU 0, as under `taskset -c 0` or `CPUAffinity=0`.
        let (seen, sched) = std::thread::spawn(|| {
            // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it, and
            // sched_setaffinity(0, ..) changes only the calling thread.
            let rc = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
            };
            assert_eq!(rc, 0, "pinning the test thread to CPU 0");
            (online_cpus(), std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0))
        })
        .join()
        .expect("thread");
        assert_eq!(sched, 1, "the pinned thread's scheduler view is one CPU");
        assert_eq!(seen, online, "every online CPU runs the XDP program and gets a share");
    }
}
