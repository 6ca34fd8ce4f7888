//! The PIN a user reads on the joining node and types on a member: a slot number on the
//! rendezvous server, then six secret digits, e.g. `42-817-305`.
//!
//! The slot number only finds the other party; the whole PIN is the PAKE's password, so the
//! server, which sees the slot number, learns nothing that helps it guess the rest.

use std::fmt;
use std::str::FromStr;

/// Largest slot number a PIN can name (the server hands out short numbers first).
pub const SLOT_MAX: u32 = 99_999;
/// Number of secret digits.
pub const SECRET_DIGITS: usize = 6;

/// A join PIN.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pin {
    /// The rendezvous slot.
    pub slot: u32,
    /// The secret, `0..1_000_000`.
    pub secret: u32,
}

impl Pin {
    /// A PIN for `slot` with a secret drawn from the system's random source.
    pub fn generate(slot: u32) -> Result<Pin, getrandom::Error> {
        // Rejection sampling keeps the six digits uniform.
        let limit = u32::MAX - u32::MAX % 1_000_000;
        loop {
            let mut bytes = [0u8; 4];
            getrandom::getrandom(&mut bytes)?;
            let value = u32::from_le_bytes(bytes);
            if value < limit {
                return Ok(Pin {
                    slot,
                    secret: value % 1_000_000,
                });
            }
        }
    }

    /// The password given to SPAKE2: the PIN's canonical text, as ASCII.
    pub fn password(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{:03}-{:03}",
            self.slot,
            self.secret / 1000,
            self.secret % 1000
        )
    }
}

/// Why a typed PIN is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinError(String);

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PIN `{}` is not like `42-817-305` (a number, then six digits; dashes or spaces between groups)",
            self.0
        )
    }
}

impl std::error::Error for PinError {}

impl FromStr for Pin {
    type Err = PinError;

    /// Accepts groups separated by `-` or spaces: the first is the slot, the others together
    /// are the six secret digits (`42-817-305`, `42 817305`).
    fn from_str(text: &str) -> Result<Pin, PinError> {
        let bad = || PinError(text.trim().chars().take(40).collect());
        let mut groups = text
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|g| !g.is_empty());
        let slot_text = groups.next().ok_or_else(bad)?;
        let secret_text: String = groups.collect();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(slot_text) || slot_text.len() > 5 || !digits(&secret_text) {
            return Err(bad());
        }
        if secret_text.len() != SECRET_DIGITS {
            return Err(bad());
        }
        let slot: u32 = slot_text.parse().map_err(|_| bad())?;
        let secret: u32 = secret_text.parse().map_err(|_| bad())?;
        if slot == 0 || slot > SLOT_MAX {
            return Err(bad());
        }
        Ok(Pin { slot, secret })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_and_parses() {
        let pin = Pin {
            slot: 42,
            secret: 7305,
        };
        assert_eq!(pin.to_string(), "42-007-305");
        for text in ["42-007-305", " 42 007 305 ", "42-007305", "42 - 007-305"] {
            assert_eq!(text.parse::<Pin>().unwrap(), pin, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_pin() {
        for bad in [
            "",
            "42",
            "42-81-305",
            "42-8173-305",
            "0-817-305",
            "123456-817-305",
            "a2-817-305",
            "42-817-30x",
            "42-+17-305",
        ] {
            assert!(bad.parse::<Pin>().is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_secrets_have_six_digits() {
        for _ in 0..100 {
            let pin = Pin::generate(7).unwrap();
            assert!(pin.secret < 1_000_000);
            assert_eq!(pin.to_string().parse::<Pin>().unwrap(), pin);
        }
    }
}
