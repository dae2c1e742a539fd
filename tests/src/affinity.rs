//! Which CPUs a thread may run on (sched_setaffinity), for the lab, the tests and the bench.
//!
//! On a veth the receiver's XDP program runs on the sending CPU, and BPF_PROG_TEST_RUN runs a
//! program on the calling thread's CPU: pinning a thread chooses the CPU (and the per-CPU map
//! slots) its packets see.

use anyhow::{Context, Result};

/// Online CPUs of the machine (not of this thread's affinity mask, which callers narrow).
pub fn ncpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(1)
}

/// Set the CPU mask of thread `pid` (0: the calling thread, and the threads it spawns from now
/// on) to `cpus`. A CPU past `CPU_SETSIZE` is an error, not silently left out.
pub fn set_mask_of(pid: libc::pid_t, cpus: impl IntoIterator<Item = usize>) -> Result<()> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            anyhow::bail!("CPU {c} is out of range (CPU_SETSIZE {})", libc::CPU_SETSIZE);
        }
        // SAFETY: `c` is inside the set (checked above).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: a valid set of the size passed.
    if unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        let who = if pid == 0 { "the calling thread".to_owned() } else { format!("thread {pid}") };
        return Err(std::io::Error::last_os_error()).with_context(|| format!("sched_setaffinity of {who}"));
    }
    Ok(())
}

/// Pin the calling thread (and the threads it spawns from now on) to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    set_mask_of(0, [cpu]).with_context(|| format!("pinning the calling thread to CPU {cpu}"))
}

/// Pin thread `pid` (another task, a kernel thread for example) to `cpu`.
pub fn pin_thread_to_cpu(pid: libc::pid_t, cpu: usize) -> Result<()> {
    set_mask_of(pid, [cpu]).with_context(|| format!("pinning thread {pid} to CPU {cpu}"))
}

/// Pin the calling thread to the CPU it is running on; that CPU.
pub fn pin_to_current_cpu() -> Result<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    let cpu = usize::try_from(cpu).map_err(|_| std::io::Error::last_os_error()).context("sched_getcpu")?;
    pin_to_cpu(cpu)?;
    Ok(cpu)
}

/// Let the calling thread run on every online CPU again.
pub fn clear_affinity() -> Result<()> {
    set_mask_of(0, 0..ncpus())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_moves_the_thread_and_clearing_frees_it() {
        // A fresh thread, so the test harness's own thread keeps its mask.
        std::thread::spawn(|| {
            let cpu = pin_to_current_cpu().expect("pin");
            // SAFETY: sched_getcpu has no preconditions.
            assert_eq!(usize::try_from(unsafe { libc::sched_getcpu() }).ok(), Some(cpu));
            let last = ncpus() - 1;
            pin_to_cpu(last).expect("pin to the last CPU");
            std::thread::yield_now();
            // SAFETY: as above.
            assert_eq!(usize::try_from(unsafe { libc::sched_getcpu() }).ok(), Some(last));
            assert!(pin_to_cpu(libc::CPU_SETSIZE as usize).is_err(), "a CPU past CPU_SETSIZE is refused");
            clear_affinity().expect("clear");
        })
        .join()
        .expect("the pinning thread");
    }
}
