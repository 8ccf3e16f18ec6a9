//! The `snapshot_fields!` macro: [`crate::Env::snapshot`] and [`crate::Env::restore`] over a
//! list of serde-serialisable fields, for envs whose future depends on nothing else.

/// Implements [`crate::Env::snapshot`] / [`crate::Env::restore`] over the listed fields (each
/// serde-serialisable). Restore parses every field before assigning any; with
/// `; check(field) = path`, `path(&self, &field)` must accept the parsed field first (so a state
/// of the wrong size is an error, not a panic at the next step).
macro_rules! snapshot_fields {
    ($($field:ident),+ $(,)?) => {
        crate::snapshot::snapshot_fields!(@body [$($field),+] []);
    };
    ($($field:ident),+ ; check($checked:ident) = $check:path) => {
        crate::snapshot::snapshot_fields!(@body [$($field),+] [$check, $checked]);
    };
    (@body [$($field:ident),+] [$($check:path, $checked:ident)?]) => {
        fn snapshot(&self) -> Option<serde_json::Value> {
            let mut map = serde_json::Map::new();
            $(map.insert(stringify!($field).into(), serde_json::to_value(&self.$field).ok()?);)+
            Some(serde_json::Value::Object(map))
        }

        fn restore(&mut self, snapshot: &serde_json::Value) -> crate::Result<()> {
            let id = crate::Env::spec(self).id.clone();
            let field = |name: &str| {
                snapshot.get(name).cloned().ok_or_else(|| crate::EnvError::Snapshot(format!("{id}: no `{name}`")))
            };
            let bad = |name: &str, e: serde_json::Error| crate::EnvError::Snapshot(format!("{id}: `{name}`: {e}"));
            $(let $field = serde_json::from_value(field(stringify!($field))?).map_err(|e| bad(stringify!($field), e))?;)+
            $($check(self, &$checked)?;)?
            $(self.$field = $field;)+
            Ok(())
        }
    };
}
pub(crate) use snapshot_fields;
