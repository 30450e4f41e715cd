//! Errors for number parsing and normalisation.

use thiserror::Error;

/// Why a string is not a usable telephone number. Every variant names what is wrong so the
/// message can be shown to an operator as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NumberError {
    /// Nothing but whitespace or separators was given.
    #[error("empty number")]
    Empty,
    /// A character that is neither a digit nor an allowed separator.
    #[error("invalid character {ch:?} at position {position} in {input:?}")]
    InvalidCharacter {
        /// The whole input, for context.
        input: String,
        /// The offending character.
        ch: char,
        /// Its position (in characters, from 0).
        position: usize,
    },
    /// More than the 15 digits E.164 allows.
    #[error("{input:?} has {digits} digits; E.164 allows at most 15")]
    TooLong {
        /// The whole input.
        input: String,
        /// How many digits it normalised to.
        digits: usize,
    },
    /// Fewer digits than any valid international number.
    #[error("{input:?} has {digits} digits; an international number needs at least {min}")]
    TooShort {
        /// The whole input.
        input: String,
        /// How many digits it normalised to.
        digits: usize,
        /// The minimum accepted.
        min: usize,
    },
    /// E.164 country codes never start with 0.
    #[error("{input:?}: an international number cannot start with 0 after the prefix")]
    LeadingZero {
        /// The whole input.
        input: String,
    },
    /// Digits only, but no rule of the dialing plan explains them.
    #[error(
        "{input:?} ({digits} digits) is not a national number of this dialing plan \
         (national numbers have {expected} digits) and has no '+' or international prefix {intl:?}"
    )]
    NotInPlan {
        /// The whole input.
        input: String,
        /// How many digits it had.
        digits: usize,
        /// The accepted national number lengths, for the message.
        expected: String,
        /// The plan's international prefix.
        intl: String,
    },
    /// An ENUM name that is not under any configured suffix.
    #[error("{name:?} is not under any ENUM suffix ({suffixes})")]
    OutsideSuffix {
        /// The domain name.
        name: String,
        /// The configured suffixes, comma separated.
        suffixes: String,
    },
    /// An ENUM name under a suffix whose labels are not single digits.
    #[error("{name:?}: label {label:?} is not a single digit")]
    BadEnumLabel {
        /// The domain name.
        name: String,
        /// The offending label.
        label: String,
    },
    /// A URI that carries no telephone number in its user part.
    #[error("{uri:?} carries no telephone number: {reason}")]
    BadUri {
        /// The URI.
        uri: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A dialing plan whose own settings are unusable.
    #[error("invalid dialing plan: {0}")]
    BadPlan(String),
}
