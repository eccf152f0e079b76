//! The engine's error type, free of PyO3 so `cargo test` can exercise it.
//!
//! The bindings turn `Configuration` into `dtlsfast.exceptions.ConfigurationError`
//! (caller misuse: a bad key, a field out of range) and `Decode` into
//! `dtlsfast.exceptions.DecodeError` (the peer sent something undecodable).
//! Routine record failures (bad tag, replay) are not errors: they are `None` / `false`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A parameter is out of range or inconsistent; raised as ConfigurationError.
    Configuration(String),
    /// Peer input that cannot be decoded; raised as DecodeError.
    Decode(String),
}

impl CoreError {
    pub(crate) fn config(message: impl Into<String>) -> Self {
        CoreError::Configuration(message.into())
    }

    pub(crate) fn decode(message: impl Into<String>) -> Self {
        CoreError::Decode(message.into())
    }

    /// The message without the variant, as the Python exception will carry it.
    pub fn message(&self) -> &str {
        match self {
            CoreError::Configuration(m) | CoreError::Decode(m) => m,
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CoreError {}

pub type CoreResult<T> = Result<T, CoreError>;
