//! Configuration errors: each names the key, the bad value and the fix.

use std::path::PathBuf;

/// Why a configuration could not be resolved. Every variant says which key
/// (or file), what was wrong with it and how to fix it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key that Foundation does not know.
    #[error("unknown configuration key `{key}` in {origin}{}; fix: remove it or use one of the keys listed by `foundation config explain`", hint(.suggestion))]
    UnknownKey {
        /// The unknown key or environment variable.
        key: String,
        /// Where it was found.
        origin: String,
        /// The closest known key.
        suggestion: Option<String>,
    },
    /// A value of the wrong type or out of range.
    #[error("{0}")]
    InvalidValue(Box<InvalidValue>),
    /// The file is not valid TOML.
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {message}; fix: check the path given by --config or FOUNDATION_CONFIG")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// A known discovery strategy that this build does not contain yet.
    #[error("discovery strategy `{strategy}` (set by `cluster` in {origin}) is not built in; fix: build with the `{strategy}` cargo feature if it has one, or use static seeds (FOUNDATION_SEEDS=host:port,...) or dns (FOUNDATION_DNS_QUERY)")]
    NotBuiltIn {
        /// The strategy's name.
        strategy: String,
        /// Where it was chosen.
        origin: String,
    },
    /// Values that contradict each other.
    #[error("{0}")]
    Contradiction(Box<Contradiction>),
    /// The production profile without a secret.
    #[error("profile `production` needs a cluster secret, also with TLS files (it keys membership and discovery; a CA certificate is public); fix: set FOUNDATION_SECRET (or `secret` in foundation.toml), e.g. from `openssl rand -hex 32`")]
    MissingSecret,
}

fn hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// Details of [`ConfigError::InvalidValue`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid value {value} for `{key}` in {origin}: expected {expected}; fix: {fix}")]
pub struct InvalidValue {
    /// The key.
    pub key: String,
    /// The bad value, as written.
    pub value: String,
    /// Where it was found.
    pub origin: String,
    /// What the key accepts.
    pub expected: String,
    /// How to fix it.
    pub fix: String,
}

/// Details of [`ConfigError::Contradiction`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("`{key}` = {value} contradicts `{other}` = {other_value}: {why}; fix: {fix}")]
pub struct Contradiction {
    /// The key found in contradiction.
    pub key: String,
    /// Its value.
    pub value: String,
    /// The key it contradicts.
    pub other: String,
    /// That key's value.
    pub other_value: String,
    /// Why they conflict.
    pub why: String,
    /// How to fix it.
    pub fix: String,
}
