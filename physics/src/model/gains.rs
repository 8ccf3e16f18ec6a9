//! DeepMimic's PD gains and torque limits, read from the pybullet sources that ship them.
//!
//! pybullet keeps them as Python list literals in the same layout as a pose (root position and
//! quaternion, then 4 slots per spherical joint and 1 per revolute joint):
//! `self._kpOrg = [...]` and `self._kdOrg = [...]` in `humanoid_stable_pd.py`, `maxForces = [...]`
//! in `pybullet_deep_mimic_env.py`, and `self._jointDofCounts = [...]` for the slot widths.

/// The numbers of the list literal assigned to `name` (`name = [ ... ]`), the first such
/// assignment in `source`.
pub(crate) fn list(source: &str, name: &str) -> Result<Vec<f64>, String> {
    let start = source
        .match_indices(name)
        .find_map(|(at, _)| {
            let rest = source[at + name.len()..].trim_start();
            let rest = rest.strip_prefix('=')?.trim_start();
            rest.starts_with('[').then(|| source.len() - rest.len() + 1)
        })
        .ok_or_else(|| format!("no list `{name} = [...]`"))?;
    let end = source[start..].find(']').ok_or_else(|| format!("`{name}`: unterminated list"))?;
    source[start..start + end]
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("`{name}`: `{item}` is not a number"))
        })
        .collect()
}

/// One value per joint from a list in pose layout: the joint's slots, which must agree.
/// `slots` gives each joint's `(name, offset, width)` in the pose.
pub(crate) fn per_joint(
    values: &[f64],
    name: &str,
    pose_len: usize,
    slots: &[(&str, usize, usize)],
) -> Result<Vec<f64>, String> {
    if values.len() != pose_len {
        return Err(format!("`{name}` has {} values, the pose {pose_len}", values.len()));
    }
    slots
        .iter()
        .map(|&(joint, offset, width)| {
            let slot = &values[offset..offset + width];
            if slot.iter().any(|&v| v != slot[0]) {
                return Err(format!("`{name}`: joint `{joint}` has differing values {slot:?}"));
            }
            if slot[0] <= 0.0 {
                return Err(format!("`{name}`: joint `{joint}` has {} (not positive)", slot[0]));
            }
            Ok(slot[0])
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SOURCE: &str = "    self._kpOrg = [\n        0, 0, 1000, 1000,\n        300\n    ]\n    kp = self._kpOrg\n";

    #[test]
    fn reads_a_multiline_list_and_skips_uses_of_the_name() {
        assert_eq!(list(SOURCE, "_kpOrg").unwrap(), [0.0, 0.0, 1000.0, 1000.0, 300.0]);
        assert_eq!(list("x = a\nx = [1, 2.5]", "x").unwrap(), [1.0, 2.5]);
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(list(SOURCE, "_kdOrg").unwrap_err(), "no list `_kdOrg = [...]`");
        assert_eq!(list("a = [1, x]", "a").unwrap_err(), "`a`: `x` is not a number");
        assert_eq!(list("a = [1, 2", "a").unwrap_err(), "`a`: unterminated list");
        let values = list(SOURCE, "_kpOrg").unwrap();
        let slots = [("chest", 2, 2), ("elbow", 4, 1)];
        assert_eq!(per_joint(&values, "kp", 5, &slots).unwrap(), [1000.0, 300.0]);
        assert!(per_joint(&values, "kp", 6, &slots).unwrap_err().contains("has 5 values, the pose 6"));
        let uneven = [0.0, 0.0, 1000.0, 900.0, 300.0];
        assert!(per_joint(&uneven, "kp", 5, &slots).unwrap_err().contains("`chest` has differing values"));
    }
}
