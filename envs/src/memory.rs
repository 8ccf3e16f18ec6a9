//! Up-front size checks: a size a user chooses (`n_state`, `num_envs`, an image shape) is
//! checked against the memory it would need before anything is allocated, so that a typo of a
//! few zeros is a one-line error naming the field and the number, not an abort or the OOM killer.

use crate::config::FieldError;

/// Bytes this process may still take: the least of what the machine has available (Linux
/// `MemAvailable`), what the process's address-space limit (`ulimit -v`) leaves above its
/// current size, and what its cgroup's `memory.max` leaves above the cgroup's use. `None` where
/// none of them can be read, and then only the address space limits sizes.
pub fn available() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let machine = read("/proc/meminfo").and_then(|t| kib_field(&t, "MemAvailable:"));
    let address_space = read("/proc/self/limits")
        .and_then(|t| address_space_limit(&t))
        .map(|limit| limit.saturating_sub(read("/proc/self/status").and_then(|t| kib_field(&t, "VmSize:")).unwrap_or(0)));
    let cgroup = cgroup_dir().and_then(|dir| {
        let max = read(&format!("{dir}/memory.max"))?.trim().parse::<u64>().ok()?;
        let current = read(&format!("{dir}/memory.current")).and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
        Some(max.saturating_sub(current))
    });
    [machine, address_space, cgroup].into_iter().flatten().min()
}

/// The value of a `Name:   123 kB` line of a /proc file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok()?.checked_mul(1024)
}

/// The soft limit of `Max address space` in /proc/self/limits (`None`: unlimited).
fn address_space_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max address space"))?;
    line.trim_start_matches("Max address space").split_whitespace().next()?.parse().ok()
}

/// The process's cgroup (v2) folder under /sys/fs/cgroup.
fn cgroup_dir() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(format!("/sys/fs/cgroup{}", path.trim_end_matches('/')))
}

/// `bytes` in a short human unit, e.g. `8.0 TB`.
pub fn human(bytes: u128) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", units[unit]) }
}

/// `Err` naming `field` when `bytes` (what `field = value` needs) exceeds the available memory.
pub fn check(field: &'static str, value: u128, bytes: u128) -> Result<(), FieldError> {
    let fits_address_space = bytes <= isize::MAX as u128;
    let limit = available().map_or(u128::MAX, u128::from);
    if fits_address_space && bytes <= limit {
        return Ok(());
    }
    let room = match available() {
        Some(a) => format!("{} of memory is available", human(u128::from(a))),
        None => "more than the address space".into(),
    };
    Err(FieldError::new(field, format!("{field} = {value} needs about {}; {room}", human(bytes))))
}

/// A vector of `len` copies of `value`, or an error naming `what` if it cannot be allocated.
pub fn try_filled<T: Clone>(len: usize, value: T, what: &str) -> crate::Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        let bytes = (len as u128) * (std::mem::size_of::<T>() as u128);
        crate::EnvError::BatchShape(format!("cannot allocate {what}: {} ({len} values)", human(bytes)))
    })?;
    v.resize(len, value);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_sizes_are_refused_with_the_number() {
        let err = check("n_state", 1_000_000_000_000, 256_000_000_000_000).err().map(|e| e.message);
        let message = err.unwrap_or_default();
        assert!(message.contains("n_state = 1000000000000") && message.contains("256.0 TB"), "{message}");
        assert!(check("n_state", 256, 65536).is_ok());
        assert!(try_filled(usize::MAX / 2, 0u64, "a batch").is_err());
        assert_eq!(human(1500), "1.5 KB");
    }

    /// The process's limits are read as the kernel writes them.
    #[test]
    fn limits_are_parsed_from_procs_text() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max stack size            8388608              unlimited            bytes\n\
                      Max address space         25769803776          unlimited            bytes\n";
        assert_eq!(address_space_limit(limits), Some(25_769_803_776));
        assert_eq!(address_space_limit(&limits.replace("25769803776", "unlimited  ")), None);
        assert_eq!(kib_field("VmPeak:\t  10 kB\nVmSize:\t   2048 kB\n", "VmSize:"), Some(2_097_152));
        // Whatever the machine, the process's own room is no more than the machine's.
        let machine = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| kib_field(&t, "MemAvailable:"));
        if let (Some(all), Some(ours)) = (machine, available()) {
            assert!(ours <= all);
        }
    }
}
