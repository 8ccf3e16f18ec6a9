//! Up-front size checks: a size a user chooses (`n_state`, `num_envs`, an image shape) is
//! checked against the memory it would need before anything is allocated, so that a typo of a
//! few zeros is a one-line error naming the field and the number, not an abort or the OOM killer.

use crate::config::FieldError;

/// Bytes the operating system reports as available (Linux `MemAvailable`); `None` where it
/// cannot be read, and then only the address space limits sizes.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
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
}
