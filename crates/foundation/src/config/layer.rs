//! One configuration layer (builder, environment or file): typed values by key.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, InvalidValue};
use super::keys::{self, KeyKind, KeySpec};
use super::suggest;
use super::types::SeedAddr;

/// A typed configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text or a word.
    Text(String),
    /// An integer.
    Int(u64),
    /// A boolean.
    Bool(bool),
    /// An IP address.
    Ip(IpAddr),
    /// Seed addresses.
    Seeds(Vec<SeedAddr>),
    /// A list of words.
    List(Vec<String>),
    /// A file path.
    Path(PathBuf),
}

/// Values of one layer, by dotted key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    values: BTreeMap<&'static str, Value>,
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if this layer sets it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// Whether the layer sets nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The keys this layer sets.
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.keys().copied()
    }

    /// Sets `key` from text as written in an environment variable or on a
    /// command line, checking it against the key's kind.
    pub fn set_str(&mut self, key: &str, raw: &str, origin: &str) -> Result<(), ConfigError> {
        let spec = keys::spec(key).ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_owned(),
            origin: origin.to_owned(),
            suggestion: suggest::closest(key, keys::KEYS.iter().map(|k| k.key)).map(str::to_owned),
        })?;
        let value = parse_str(spec, raw, origin)?;
        self.values.insert(spec.key, value);
        Ok(())
    }

    /// Sets a value that the caller already typed (the builder). The key
    /// must exist; callers inside the crate only pass known keys.
    pub(crate) fn set(&mut self, key: &'static str, value: Value) {
        debug_assert!(keys::spec(key).is_some(), "unknown key {key}");
        self.values.insert(key, value);
    }

    /// Reads the `FOUNDATION_*` variables from `vars`, and the standard
    /// ones a key declares (`OTEL_EXPORTER_OTLP_ENDPOINT`, ...). Unknown
    /// `FOUNDATION_*` variables are errors (a typo must not be ignored).
    pub fn from_env<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Layer, ConfigError> {
        let mut layer = Layer::new();
        for (var, raw) in vars {
            if var == keys::CONFIG_FILE_ENV {
                continue;
            }
            let origin = format!("environment variable {var}");
            match keys::spec_for_env(var) {
                Some(spec) => {
                    let value = parse_str(spec, raw, &origin)?;
                    layer.values.insert(spec.key, value);
                }
                None if !var.starts_with("FOUNDATION_") => continue,
                None => {
                    return Err(ConfigError::UnknownKey {
                        key: var.to_owned(),
                        origin,
                        suggestion: suggest::closest(var, keys::KEYS.iter().filter_map(|k| k.env))
                            .map(str::to_owned),
                    })
                }
            }
        }
        Ok(layer)
    }

    /// Parses foundation.toml text. `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Layer, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: e.to_string().trim().replace('\n', " "),
                })?;
        let origin = format!("file {}", path.display());
        let mut layer = Layer::new();
        for (name, value) in &table {
            match value {
                toml::Value::Table(section) if is_section(name) => {
                    for (sub, v) in section {
                        layer.insert_toml(&format!("{name}.{sub}"), v, &origin)?;
                    }
                }
                _ => layer.insert_toml(name, value, &origin)?,
            }
        }
        Ok(layer)
    }

    fn insert_toml(&mut self, key: &str, v: &toml::Value, origin: &str) -> Result<(), ConfigError> {
        let spec = keys::spec(key).ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_owned(),
            origin: origin.to_owned(),
            suggestion: suggest::closest(key, keys::KEYS.iter().map(|k| k.key)).map(str::to_owned),
        })?;
        let value = parse_toml(spec, v, origin)?;
        self.values.insert(spec.key, value);
        Ok(())
    }
}

fn is_section(name: &str) -> bool {
    keys::KEYS
        .iter()
        .any(|k| k.key.split_once('.').is_some_and(|(s, _)| s == name))
}

fn invalid(spec: &KeySpec, shown: String, origin: &str) -> ConfigError {
    let fix = match spec.env {
        Some(env) => format!("set `{}` (or {env}) to {}", spec.key, spec.kind.expected()),
        None => format!("set `{}` to {}", spec.key, spec.kind.expected()),
    };
    ConfigError::InvalidValue(Box::new(InvalidValue {
        key: spec.key.to_owned(),
        value: shown,
        origin: origin.to_owned(),
        expected: spec.kind.expected(),
        fix,
    }))
}

/// Parses text (environment, command line) for `spec`.
fn parse_str(spec: &KeySpec, raw: &str, origin: &str) -> Result<Value, ConfigError> {
    let bad = || invalid(spec, format!("`{raw}`"), origin);
    let raw_t = raw.trim();
    Ok(match spec.kind {
        KeyKind::Text if raw_t.is_empty() => return Err(bad()),
        KeyKind::Text => Value::Text(raw_t.to_owned()),
        KeyKind::Word(words) if words.contains(&raw_t) => Value::Text(raw_t.to_owned()),
        KeyKind::Word(_) => return Err(bad()),
        KeyKind::Int { min, max } => match raw_t.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Value::Int(n),
            _ => return Err(bad()),
        },
        KeyKind::Bool => match raw_t {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => return Err(bad()),
        },
        KeyKind::Ip => Value::Ip(raw_t.parse().map_err(|_| bad())?),
        KeyKind::Seeds => Value::Seeds(parse_seeds(
            raw_t.split(',').filter(|s| !s.trim().is_empty()),
            spec,
            origin,
        )?),
        KeyKind::List => Value::List(
            raw_t
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        KeyKind::Path if raw_t.is_empty() => return Err(bad()),
        KeyKind::Path => Value::Path(PathBuf::from(raw_t)),
    })
}

fn parse_seeds<'a>(
    items: impl Iterator<Item = &'a str>,
    spec: &KeySpec,
    origin: &str,
) -> Result<Vec<SeedAddr>, ConfigError> {
    items
        .map(|s| {
            s.parse::<SeedAddr>().map_err(|why| {
                ConfigError::InvalidValue(Box::new(InvalidValue {
                    key: spec.key.to_owned(),
                    value: format!("`{}`", s.trim()),
                    origin: origin.to_owned(),
                    expected: spec.kind.expected(),
                    fix: format!("{why} (for example 10.0.0.7:7946 or seed-1.internal:7946)"),
                }))
            })
        })
        .collect()
}

/// Parses a TOML value for `spec`; strings are accepted where the env form
/// is text (ports as strings are still rejected: the type is checked).
fn parse_toml(spec: &KeySpec, v: &toml::Value, origin: &str) -> Result<Value, ConfigError> {
    let shown = v.to_string();
    let bad = || invalid(spec, shown.clone(), origin);
    match (spec.kind, v) {
        (KeyKind::Int { .. }, toml::Value::Integer(n)) => {
            let n = u64::try_from(*n).map_err(|_| bad())?;
            parse_str(spec, &n.to_string(), origin).map_err(|_| bad())
        }
        (KeyKind::Bool, toml::Value::Boolean(b)) => Ok(Value::Bool(*b)),
        (KeyKind::Seeds, toml::Value::Array(items)) => {
            let strs: Option<Vec<&str>> = items.iter().map(|i| i.as_str()).collect();
            Ok(Value::Seeds(parse_seeds(
                strs.ok_or_else(bad)?.into_iter(),
                spec,
                origin,
            )?))
        }
        (KeyKind::List, toml::Value::Array(items)) => {
            let strs: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect();
            Ok(Value::List(strs.ok_or_else(bad)?))
        }
        (
            KeyKind::Text | KeyKind::Word(_) | KeyKind::Ip | KeyKind::Path,
            toml::Value::String(s),
        ) => parse_str(spec, s, origin).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> Result<Layer, ConfigError> {
        Layer::from_toml(text, Path::new("foundation.toml"))
    }

    #[test]
    fn reads_sections_and_top_level_keys() {
        let l = toml("cluster = \"static\"\nseeds = [\"a:1\"]\n[membership]\nport = 7000\n")
            .expect("valid");
        assert_eq!(l.get("cluster"), Some(&Value::Text("static".into())));
        assert_eq!(l.get("membership.port"), Some(&Value::Int(7000)));
        assert!(matches!(l.get("seeds"), Some(Value::Seeds(s)) if s.len() == 1));
    }

    #[test]
    fn unknown_key_in_file_is_named_with_a_suggestion() {
        let e = toml("[membership]\nprot = 1\n").expect_err("unknown");
        assert_eq!(
            e,
            ConfigError::UnknownKey {
                key: "membership.prot".into(),
                origin: "file foundation.toml".into(),
                suggestion: Some("membership.port".into()),
            }
        );
        assert!(e.to_string().contains("did you mean `membership.port`"));
    }

    #[test]
    fn unknown_section_is_an_unknown_key() {
        let e = toml("[transprt]\nport = 1\n").expect_err("unknown");
        assert!(matches!(e, ConfigError::UnknownKey { ref key, .. } if key == "transprt"));
    }

    #[test]
    fn wrong_type_names_key_value_and_fix() {
        let e = toml("[membership]\nport = \"seven\"\n").expect_err("wrong type");
        let msg = e.to_string();
        assert!(msg.contains("`membership.port`"), "{msg}");
        assert!(msg.contains("\"seven\""), "{msg}");
        assert!(msg.contains("an integer from 0 to 65535"), "{msg}");
        assert!(msg.contains("FOUNDATION_PORT"), "{msg}");
    }

    #[test]
    fn out_of_range_integer_is_rejected() {
        assert!(toml("[membership]\nport = 70000\n").is_err());
        assert!(toml("[membership]\nport = -1\n").is_err());
    }

    #[test]
    fn syntax_error_is_reported_with_the_path() {
        let e = toml("port = = 3").expect_err("syntax");
        assert!(matches!(e, ConfigError::Syntax { .. }));
        assert!(e.to_string().contains("foundation.toml"));
    }

    #[test]
    fn unparsable_seed_address_is_rejected() {
        let e = Layer::from_env([("FOUNDATION_SEEDS", "10.0.0.1:7946,nohost")]).expect_err("bad");
        let msg = e.to_string();
        assert!(msg.contains("`nohost`") && msg.contains("no port"), "{msg}");
        let e = Layer::from_env([("FOUNDATION_SEEDS", "h:99999")]).expect_err("bad port");
        assert!(e.to_string().contains("not a port"));
    }

    #[test]
    fn unknown_env_var_is_an_error_with_suggestion() {
        let e = Layer::from_env([("FOUNDATION_SEDS", "a:1")]).expect_err("unknown");
        assert!(e.to_string().contains("FOUNDATION_SEEDS"), "{e}");
    }

    #[test]
    fn unparsable_ip_is_rejected() {
        let e = Layer::from_env([("FOUNDATION_BIND", "10.0.0.300")]).expect_err("bad ip");
        assert!(e.to_string().contains("`10.0.0.300`"));
    }

    #[test]
    fn other_env_vars_are_ignored() {
        let l =
            Layer::from_env([("HOME", "/root"), ("FOUNDATION_CONFIG", "x.toml")]).expect("ignored");
        assert!(l.is_empty());
    }
}
