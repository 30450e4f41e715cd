//! Durations in the configuration file.
//!
//! A duration is written as a string parsed by humantime (`"30s"`, `"500ms"`, `"5m"`,
//! `"1h 30m"`), or, as in configurations of earlier releases, as an integer in the unit the
//! field's old name gave (`idle_timeout_secs = 60`, `poll_ms = 500`). Both read the same; the
//! value is kept in that unit, and written back as a humantime string.

use std::time::Duration;

use serde::{Deserializer, Serializer};

/// An integer in the field's unit, or a humantime string.
struct Visitor<'a> {
    unit: Duration,
    unit_name: &'a str,
}

impl serde::de::Visitor<'_> for Visitor<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a duration like \"30s\", \"5m\" or \"1h\", or a whole number of {}", self.unit_name)
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
        Ok(n)
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
        u64::try_from(n).map_err(|_| E::custom(format!("{n} is negative; a duration is 0 or more")))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<u64, E> {
        let value = humantime_serde::re::humantime::parse_duration(s)
            .map_err(|e| E::custom(format!("{s:?} is not a duration like \"30s\", \"5m\" or \"1h\": {e}")))?;
        let n = value.as_nanos() / self.unit.as_nanos();
        if n * self.unit.as_nanos() != value.as_nanos() {
            return Err(E::custom(format!("{s:?} is not a whole number of {}", self.unit_name)));
        }
        u64::try_from(n).map_err(|_| E::custom(format!("{s:?} is too long")))
    }
}

fn read<'de, D: Deserializer<'de>>(d: D, unit: Duration, unit_name: &str) -> Result<u64, D::Error> {
    d.deserialize_any(Visitor { unit, unit_name })
}

fn write<S: Serializer>(n: u64, unit: Duration, s: S) -> Result<S::Ok, S::Error> {
    let total = unit.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
    s.serialize_str(&humantime_serde::re::humantime::format_duration(total).to_string())
}

/// A duration kept in whole seconds.
pub mod secs {
    use super::*;

    /// Reads seconds or a humantime string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        read(d, Duration::from_secs(1), "seconds")
    }

    /// Writes a humantime string.
    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        write(*n, Duration::from_secs(1), s)
    }
}

/// A duration kept in whole milliseconds.
pub mod millis {
    use super::*;

    /// Reads milliseconds or a humantime string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        read(d, Duration::from_millis(1), "milliseconds")
    }

    /// Writes a humantime string.
    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        write(*n, Duration::from_millis(1), s)
    }
}

/// A duration kept in whole minutes.
pub mod minutes {
    use super::*;

    /// Reads minutes or a humantime string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        read(d, Duration::from_secs(60), "minutes")
    }

    /// Writes a humantime string.
    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        write(*n, Duration::from_secs(60), s)
    }
}

/// `n` of `unit` as the humantime text the configuration writes (`60` seconds: `"1m"`).
pub fn text(n: u64, unit: Duration) -> String {
    humantime_serde::re::humantime::format_duration(unit.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX)))
        .to_string()
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct T {
        #[serde(with = "super::secs")]
        s: u64,
        #[serde(with = "super::millis")]
        ms: u64,
        #[serde(with = "super::minutes")]
        m: u64,
    }

    #[test]
    fn integers_in_the_old_unit_and_humantime_strings_read_alike() {
        let old: T = toml::from_str("s = 90\nms = 500\nm = 60\n").unwrap();
        let new: T = toml::from_str("s = \"1m 30s\"\nms = \"500ms\"\nm = \"1h\"\n").unwrap();
        assert_eq!(old, T { s: 90, ms: 500, m: 60 });
        assert_eq!(old, new);
        assert_eq!(toml::to_string(&new).unwrap(), "s = \"1m 30s\"\nms = \"500ms\"\nm = \"1h\"\n");
        assert_eq!(toml::from_str::<T>(&toml::to_string(&new).unwrap()).unwrap(), new);
    }

    #[test]
    fn bad_durations_say_why() {
        let e = toml::from_str::<T>("s = \"ten\"\nms = 1\nm = 1\n").unwrap_err().to_string();
        assert!(e.contains("\"ten\" is not a duration like \"30s\""), "{e}");
        let e = toml::from_str::<T>("s = \"1500ms\"\nms = 1\nm = 1\n").unwrap_err().to_string();
        assert!(e.contains("not a whole number of seconds"), "{e}");
        let e = toml::from_str::<T>("s = -1\nms = 1\nm = 1\n").unwrap_err().to_string();
        assert!(e.contains("-1 is negative"), "{e}");
        let e = toml::from_str::<T>("s = true\nms = 1\nm = 1\n").unwrap_err().to_string();
        assert!(e.contains("a duration like \"30s\""), "{e}");
    }
}
