//! The rule for listeners without TLS: plain text only where nobody else can listen.

use std::net::SocketAddr;

/// Whether a listener may serve without TLS, and whether that deserves a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plaintext {
    /// A loopback address: only this host reaches it.
    Loopback,
    /// A non-loopback address, allowed by `[tls] allow_plaintext = true`: warn at start.
    AllowedByConfig,
}

/// A listener that would send secrets in clear over a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{setting} = {addr} is not a loopback address and [tls] is not configured: passwords, tokens \
     and callers' numbers would cross the network in clear. Configure [tls] ca, cert and key \
     (`tollgate pki`), or set [tls] allow_plaintext = true to accept the risk"
)]
pub struct PlaintextRefused {
    /// The configuration field of the listener (`api.listen`).
    pub setting: String,
    /// The address it would bind.
    pub addr: SocketAddr,
}

/// Decides whether the listener `setting` on `addr` may serve plain text.
pub fn check_plaintext(setting: &str, addr: SocketAddr, allow_plaintext: bool) -> Result<Plaintext, PlaintextRefused> {
    match (addr.ip().is_loopback(), allow_plaintext) {
        (true, _) => Ok(Plaintext::Loopback),
        (false, true) => Ok(Plaintext::AllowedByConfig),
        (false, false) => Err(PlaintextRefused { setting: setting.to_string(), addr }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_for_loopback_unless_the_operator_accepts_the_risk() {
        let cases: [(&str, bool, Result<Plaintext, ()>); 6] = [
            ("127.0.0.1:8080", false, Ok(Plaintext::Loopback)),
            ("127.0.53.1:8080", false, Ok(Plaintext::Loopback)),
            ("[::1]:8080", false, Ok(Plaintext::Loopback)),
            ("10.0.0.1:8080", false, Err(())),
            ("0.0.0.0:8080", false, Err(())),
            ("10.0.0.1:8080", true, Ok(Plaintext::AllowedByConfig)),
        ];
        for (addr, allow, expected) in cases {
            let got = check_plaintext("api.listen", addr.parse().unwrap(), allow).map_err(|_| ());
            assert_eq!(got, expected, "{addr} allow={allow}");
        }
        let refusal = check_plaintext("agent.listen", "0.0.0.0:7701".parse().unwrap(), false).unwrap_err();
        assert!(refusal.to_string().starts_with("agent.listen = 0.0.0.0:7701 is not a loopback address"));
    }
}
