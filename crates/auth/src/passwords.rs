//! Staff passwords: the rules a new one must meet (NIST SP 800-63B), and argon2id hashing
//! at OWASP's parameters. A password is never logged, stored or returned; only its PHC hash
//! string is kept.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use clinic_domain::FieldError;

/// Shortest password accepted, in characters.
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in characters (argon2 takes any length; this bounds the work
/// one request can ask for).
pub const MAX_CHARS: usize = 128;
/// The zxcvbn score (0–4) a password must reach: 3 is "safely unguessable: moderate
/// protection from offline slow-hash scenario", which argon2id is.
pub const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// argon2id with 19 MiB of memory, 2 passes and 1 lane: OWASP's Password Storage Cheat
/// Sheet's first recommended setting (docs/security.md says why).
pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

fn hasher() -> Argon2<'static> {
    // The constants are valid argon2 parameters; `Params::new` only refuses out-of-range ones.
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password: 12 to 128 characters, and not common or guessable (zxcvbn, which
/// also weighs the user's own email and name, given in `about_user`).
pub fn check_new(password: &str, about_user: &[&str]) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(FieldError::new(
            "password",
            "too_short",
            format!("a password needs at least {MIN_CHARS} characters"),
        ));
    }
    if chars > MAX_CHARS {
        return Err(FieldError::new(
            "password",
            "too_long",
            format!("a password has at most {MAX_CHARS} characters"),
        ));
    }
    // zxcvbn matches each input as one word: the parts of an address and a name count too.
    let mut words: Vec<&str> = about_user.to_vec();
    words.extend(
        about_user
            .iter()
            .flat_map(|s| s.split(|c: char| !c.is_alphanumeric()))
            .filter(|w| w.chars().count() >= 3),
    );
    let estimate = zxcvbn::zxcvbn(password, &words);
    if estimate.score() < MIN_SCORE {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .unwrap_or_else(|| "it is too easy to guess".to_owned());
        return Err(FieldError::new(
            "password",
            "too_common",
            format!("choose a less common password: {hint}. A few unrelated words make a good one."),
        ));
    }
    Ok(())
}

/// The PHC string of `password` under a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| PasswordError)?
        .to_string())
}

/// Whether `password` matches the stored PHC string (its own parameters are used, so older
/// hashes keep working when the parameters rise).
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// Hashing failed (argon2 refuses only impossible inputs; reported without the password).
#[derive(Debug, thiserror::Error)]
#[error("the password could not be hashed")]
pub struct PasswordError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_at_the_owasp_parameters_and_salted() {
        let a = hash("correct horse battery staple").expect("hash");
        let b = hash("correct horse battery staple").expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify("correct horse battery staple", &a));
        assert!(!verify("correct horse battery stapl", &a));
        assert!(!verify("correct horse battery staple", "not a phc string"));
    }

    #[test]
    fn new_passwords_are_long_enough_short_enough_and_uncommon() {
        let code = |p: &str, about: &[&str]| check_new(p, about).err().map(|e| e.code);
        assert_eq!(code("Tr0ub4dor&3", &[]), Some("too_short".into()));
        assert_eq!(code(&"x".repeat(129), &[]), Some("too_long".into()));
        assert_eq!(code("password1234", &[]), Some("too_common".into()));
        assert_eq!(code("qwertyuiop12", &[]), Some("too_common".into()));
        // The user's own name and address count against the password.
        let about = ["zorblat.quintex@clinic.example", "Zorblat Quintex"];
        assert_eq!(code("quintexzorblat", &[]), None);
        assert_eq!(code("quintexzorblat", &about), Some("too_common".into()));
        assert_eq!(code("gravel lantern orbit tulip", &[]), None);
        // 12 characters are counted as characters, not bytes.
        assert_eq!(code("ÿ".repeat(11).as_str(), &[]), Some("too_short".into()));
    }
}
