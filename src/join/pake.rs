//! SPAKE2 over the PIN (the `spake2` crate, Ed25519 group, the joiner as side A) and the keys
//! derived from its result. Specified in `spec/join.md` section 4.

use rand_core::{CryptoRng, RngCore};
use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::pin::Pin;

/// SPAKE2 identity of side A, the joining node.
pub const JOINER_IDENTITY: &[u8] = b"exocore join v1 joiner";
/// SPAKE2 identity of side B, the member admitting it.
pub const MEMBER_IDENTITY: &[u8] = b"exocore join v1 member";
/// Length of a SPAKE2 message: a side byte (`A` or `B`) and a compressed Edwards point.
pub const PAKE_MESSAGE_LEN: usize = 33;

/// Which party this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The node asking to join (SPAKE2 side A).
    Joiner,
    /// The member admitting it (SPAKE2 side B).
    Member,
}

/// Everything both parties derive from the SPAKE2 key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Keys {
    /// Sent by the joiner to prove it knows the PIN.
    pub joiner_confirmation: [u8; 32],
    /// Sent by the member to prove it knows the PIN.
    pub member_confirmation: [u8; 32],
    /// Seals the joiner's messages.
    pub joiner_to_member: [u8; 32],
    /// Seals the member's messages.
    pub member_to_joiner: [u8; 32],
}

impl Keys {
    /// Derives the four keys from the 32-byte SPAKE2 result with BLAKE3's key derivation.
    pub fn derive(spake_key: &[u8]) -> Keys {
        let derive = |context: &str| blake3::derive_key(context, spake_key);
        Keys {
            joiner_confirmation: derive("exocore join v1 joiner confirmation"),
            member_confirmation: derive("exocore join v1 member confirmation"),
            joiner_to_member: derive("exocore join v1 joiner to member"),
            member_to_joiner: derive("exocore join v1 member to joiner"),
        }
    }
}

/// A SPAKE2 exchange in progress.
pub struct Pake {
    side: Side,
    state: Spake2<Ed25519Group>,
}

impl std::fmt::Debug for Pake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pake({:?})", self.side)
    }
}

/// The other side's SPAKE2 message cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPakeMessage;

impl Pake {
    /// Starts the exchange; returns the state and the message to send.
    pub fn start(side: Side, pin: &Pin, rng: impl RngCore + CryptoRng) -> (Pake, Vec<u8>) {
        let password = Password::new(pin.password());
        let (a, b) = (
            Identity::new(JOINER_IDENTITY),
            Identity::new(MEMBER_IDENTITY),
        );
        let (state, message) = match side {
            Side::Joiner => Spake2::<Ed25519Group>::start_a_with_rng(&password, &a, &b, rng),
            Side::Member => Spake2::<Ed25519Group>::start_b_with_rng(&password, &a, &b, rng),
        };
        (Pake { side, state }, message)
    }

    /// Finishes with the other side's message (which must come from the other side: a
    /// reflected message has the wrong side byte and is refused).
    pub fn finish(self, message: &[u8]) -> Result<Keys, BadPakeMessage> {
        let key = self.state.finish(message).map_err(|_| BadPakeMessage)?;
        Ok(Keys::derive(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn same_pin_same_keys_other_pin_other_keys() {
        let pin = Pin {
            slot: 3,
            secret: 123_456,
        };
        let (joiner, to_member) = Pake::start(Side::Joiner, &pin, OsRng);
        let (member, to_joiner) = Pake::start(Side::Member, &pin, OsRng);
        assert_eq!(to_member.len(), PAKE_MESSAGE_LEN);
        let keys = joiner.finish(&to_joiner).unwrap();
        assert_eq!(keys, member.finish(&to_member).unwrap());

        let other = Pin {
            slot: 3,
            secret: 123_457,
        };
        let (joiner, to_member) = Pake::start(Side::Joiner, &pin, OsRng);
        let (member, to_joiner) = Pake::start(Side::Member, &other, OsRng);
        assert_ne!(
            joiner.finish(&to_joiner).unwrap(),
            member.finish(&to_member).unwrap()
        );
    }

    #[test]
    fn reflected_or_garbage_messages_are_refused() {
        let pin = Pin { slot: 3, secret: 1 };
        let (joiner, own) = Pake::start(Side::Joiner, &pin, OsRng);
        assert!(joiner.finish(&own).is_err());
        let (joiner, _) = Pake::start(Side::Joiner, &pin, OsRng);
        assert!(joiner.finish(&[0x42; 10]).is_err());
    }
}
