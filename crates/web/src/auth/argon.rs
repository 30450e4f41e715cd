//! Argon2id password hashes (PHC strings) computed in reused memory.
//!
//! The argon2 crate's convenience API allocates the whole Argon2 memory (19 MiB with the
//! default parameters) on every call. Freed, that block stays resident in the allocator arena
//! of the thread that ran the check, and checks are spread over the blocking pool's threads: on
//! the base commit ten sequential wrong logins grew the server's RSS from 44 MB to 230 MB and
//! kept it there. Here every hash or verification borrows one of at most
//! [`super::gate::PERMITS`] buffers kept for the life of the process, through the crate's
//! `hash_password_into_with_memory`, so password checks hold at most that many blocks of
//! memory, ever. The result is the same PHC string the crate makes and verifies (tested both
//! ways).

use std::sync::Mutex;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

/// Largest Argon2 memory a stored hash may ask for, KiB (64 MiB; the default is 19 MiB). A
/// hash asking for more (say, edited by hand) never verifies.
pub const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// Memory buffers not in use (at most [`super::gate::PERMITS`] are kept).
static FREE_MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Runs `f` with `blocks` Argon2 blocks of reused memory.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let mut memory = FREE_MEMORY.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    let result = f(&mut memory[..blocks]);
    let mut free = FREE_MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    if free.len() < super::gate::PERMITS {
        free.push(memory);
    }
    result
}

/// Hashes `password` with a random salt and the default parameters (Argon2id, 19 MiB, two
/// passes, one lane), as a PHC string.
pub fn hash(password: &[u8]) -> Result<String, String> {
    let params = Params::default();
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_memory(params.block_count(), |m| argon.hash_password_into_with_memory(password, &salt, &mut out, m))
        .map_err(|e| format!("password hashing failed: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`; `None` when `stored` is not an Argon2
/// hash this module can check (then no Argon2 work was done).
pub fn check(stored: &str, password: &[u8]) -> Option<bool> {
    let phc = PasswordHash::new(stored).ok()?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str()).ok()?;
    let version = phc.version.map(Version::try_from).transpose().ok()?;
    let params = Params::try_from(&phc).ok()?;
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else { return None };
    if params.m_cost() > MAX_MEMORY_KIB {
        tracing::error!(m_cost = params.m_cost(), "a stored password hash asks for more Argon2 memory than allowed");
        return None;
    }
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer.get_mut(..expected.len())?;
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
    let computed = with_memory(params.block_count(), |m| argon.hash_password_into_with_memory(password, salt, out, m));
    Some(computed.is_ok() && bool::from(out.ct_eq(expected.as_bytes())))
}

/// True if `password` matches the PHC string `stored` (false for anything that is not an
/// Argon2 hash this module can check).
pub fn verify(stored: &str, password: &[u8]) -> bool {
    check(stored, password) == Some(true)
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn hashes_are_those_of_the_argon2_crate_both_ways() {
        let ours = hash(b"a password").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"a password", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"another one", &parsed).is_err());
        let theirs = Argon2::default().hash_password(b"a password").unwrap().to_string();
        assert!(verify(&theirs, b"a password"));
        assert!(!verify(&theirs, b"a passwore"));
        assert!(verify(&ours, b"a password") && !verify(&ours, b""));
    }

    #[test]
    fn what_is_not_a_usable_hash_never_verifies() {
        assert!(!verify("", b""));
        assert!(!verify("plain text", b"plain text"));
        assert!(!verify("$argon2id$v=19$m=1048576,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", b"x"), "1 GiB asked");
        let ours = hash(b"x").unwrap();
        let without_hash = ours.rsplit_once('$').unwrap().0;
        assert!(!verify(without_hash, b"x"));
    }

    #[test]
    fn memory_is_reused_not_kept_per_call() {
        for _ in 0..5 {
            hash(b"x").unwrap();
        }
        assert!(FREE_MEMORY.lock().unwrap().len() <= super::super::gate::PERMITS);
    }
}
