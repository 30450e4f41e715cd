//! The API version and the rule of which versions talk to each other.

/// The version of the control-plane contract this build speaks. Raise it by one when a
/// release changes the contract in a way an older peer must know about (a new required
/// field, a changed meaning); additions an older peer may ignore do not need a new version.
pub const API_VERSION: u32 = 1;

/// The response header that carries the answering server's [`API_VERSION`].
pub const VERSION_HEADER: &str = "tollgate-api-version";

/// Whether a peer speaking `theirs` can work with us speaking `ours`: versions one apart
/// (release N with N-1 and N+1) are supported, which is what a rolling upgrade or a backout
/// needs; a peer two or more versions away is refused with
/// [`ErrorCode::IncompatibleVersion`](crate::ErrorCode::IncompatibleVersion).
pub fn compatible(ours: u32, theirs: u32) -> bool {
    ours.abs_diff(theirs) <= 1
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn neighbours_talk_and_farther_releases_do_not() {
        assert!(compatible(5, 5));
        assert!(compatible(5, 4));
        assert!(compatible(5, 6));
        assert!(!compatible(5, 3));
        assert!(!compatible(5, 7));
        assert!(compatible(0, 1));
    }
}
