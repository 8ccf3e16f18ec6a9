//! Typed, validated configs and per-reset parameters, built from defaults plus key/value
//! overrides (the registry's `make(id, overrides)`, `--set key=value`, Python keyword args).

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{EnvError, Result};

/// A construction config or a per-reset parameter set: serde with `Default`, unknown fields
/// rejected, and a `validate` that names the offending field.
pub trait Validate: Serialize + DeserializeOwned + Default + Clone {
    /// Checks values against their ranges; called once whenever the struct is built from
    /// overrides.
    fn validate(&self) -> Result<(), FieldError>;
}

/// A field that failed validation: which one, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The field's key.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// `Err` unless `value` is finite and strictly positive.
pub fn positive(field: &'static str, value: f64) -> Result<(), FieldError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("must be finite and > 0, got {value}")))
    }
}

/// `Err` unless `value` is finite.
pub fn finite(field: &'static str, value: f64) -> Result<(), FieldError> {
    if value.is_finite() { Ok(()) } else { Err(FieldError::new(field, format!("must be finite, got {value}"))) }
}

/// `Err` unless `low <= high`, both finite.
pub fn ordered(field: &'static str, low: f64, high: f64) -> Result<(), FieldError> {
    if low.is_finite() && high.is_finite() && low <= high {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("needs finite low <= high, got [{low}, {high}]")))
    }
}

/// `base` with `overrides` applied key by key, then validated. Unknown keys, values of the wrong
/// type and out-of-range values are errors naming the field; `context` says which config.
/// Borrows `base` when there is nothing to override, so the hot reset path does not allocate.
pub fn overlay<'a, T: Validate>(base: &'a T, overrides: &Map<String, Value>, context: &str) -> Result<Cow<'a, T>> {
    if overrides.is_empty() {
        return Ok(Cow::Borrowed(base));
    }
    let Value::Object(mut fields) = serde_json::to_value(base).map_err(|e| EnvError::InvalidField {
        context: context.into(),
        field: "<all>".into(),
        message: e.to_string(),
    })?
    else {
        return Err(EnvError::InvalidField {
            context: context.into(),
            field: "<all>".into(),
            message: "config does not serialise to a map".into(),
        });
    };
    for (key, value) in overrides {
        if !fields.contains_key(key) {
            let known: Vec<&str> = fields.keys().map(String::as_str).collect();
            return Err(EnvError::UnknownField {
                context: context.into(),
                field: key.clone(),
                known: known.join(", "),
            });
        }
        fields.insert(key.clone(), value.clone());
        // Deserialise after each key so a type error names the key that caused it.
        if let Err(e) = serde_json::from_value::<T>(Value::Object(fields.clone())) {
            let message = if value.is_null() { "null is not allowed here; give a value".into() } else { e.to_string() };
            return Err(EnvError::InvalidField { context: context.into(), field: key.clone(), message });
        }
    }
    let built: T = serde_json::from_value(Value::Object(fields)).map_err(|e| EnvError::InvalidField {
        context: context.into(),
        field: "<all>".into(),
        message: e.to_string(),
    })?;
    checked(built, context).map(Cow::Owned)
}

/// `value` if it validates, else the error naming the field.
pub fn checked<T: Validate>(value: T, context: &str) -> Result<T> {
    value.validate().map_err(|e| EnvError::InvalidField {
        context: context.into(),
        field: e.field.into(),
        message: e.message,
    })?;
    Ok(value)
}

/// Parses a command-line `key=value` pair: the value is JSON when it parses as JSON
/// (`9.8`, `true`, `[1,2]`), else a string (`system=he1`).
pub fn parse_key_value(pair: &str) -> Result<(String, Value), String> {
    let (key, raw) = pair.split_once('=').ok_or_else(|| format!("expected key=value, got `{pair}`"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("empty key in `{pair}`"));
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    Ok((key.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        mass: f64,
        steps: u32,
    }
    impl Default for Demo {
        fn default() -> Self {
            Self { mass: 1.0, steps: 3 }
        }
    }
    impl Validate for Demo {
        fn validate(&self) -> Result<(), FieldError> {
            positive("mass", self.mass)
        }
    }

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn overlay_applies_and_names_fields() {
        let base = Demo::default();
        let got = overlay(&base, &map(serde_json::json!({"mass": 2.5})), "demo").map(Cow::into_owned);
        assert_eq!(got, Ok(Demo { mass: 2.5, steps: 3 }));
        assert!(matches!(overlay(&base, &Map::new(), "demo"), Ok(Cow::Borrowed(_))));
        let unknown = overlay(&base, &map(serde_json::json!({"masss": 2.5})), "demo");
        assert!(matches!(unknown, Err(EnvError::UnknownField { ref field, .. }) if field == "masss"));
        let wrong_type = overlay(&base, &map(serde_json::json!({"steps": "x"})), "demo");
        assert!(matches!(wrong_type, Err(EnvError::InvalidField { ref field, .. }) if field == "steps"));
        let invalid = overlay(&base, &map(serde_json::json!({"mass": -1.0})), "demo");
        assert!(matches!(invalid, Err(EnvError::InvalidField { ref field, .. }) if field == "mass"));
        let null = overlay(&base, &map(serde_json::json!({"mass": null})), "demo");
        assert!(matches!(null, Err(EnvError::InvalidField { ref field, ref message, .. })
            if field == "mass" && message.contains("null is not allowed")));
    }

    #[test]
    fn key_values_parse_as_json_or_string() {
        assert_eq!(parse_key_value("g=9.8"), Ok(("g".into(), serde_json::json!(9.8))));
        assert_eq!(parse_key_value("system=he1"), Ok(("system".into(), serde_json::json!("he1"))));
        assert!(parse_key_value("novalue").is_err());
    }
}
