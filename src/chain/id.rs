//! Operation ids: unique across the cell by construction, ordered by time.
//!
//! An [`OperationId`] is `(time_us, node)`, compared as a tuple:
//!
//! - `time_us` is a hybrid logical clock in microseconds: each id a node issues takes
//!   `max(wall clock, last issued + 1)`, so ids of one node strictly increase even when its
//!   wall clock steps backwards. The last issued time is persisted (see
//!   [`ChainStore::next_operation_time`](super::ChainStore::next_operation_time)), so a
//!   restart never reissues an id.
//! - `node` is the first 8 bytes of BLAKE3(author public key) read as a big-endian `u64`
//!   ([`node_tag`]): ids of two nodes never collide, and anyone can check that an id belongs
//!   to its operation's author.
//!
//! On the wire and on disk an id is 16 bytes, `time_us` then `node`, both **big-endian**, so
//! the byte order of ids is their numeric order: LMDB keys, range bounds and any client's
//! byte-string sort agree. `spec/chain.md` states this contract.
//!
//! Architecture invariant: [`IdGenerator`] reads no clock; the wall time is an input.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError as BincodeDecodeError, EncodeError};
use bincode::{Decode, Encode};
use exocore_protocol::identity::PublicKey;

use super::error::IdError;

/// Length of an id's byte form.
pub const OPERATION_ID_LEN: usize = 16;

/// The id of an operation: a time in microseconds and the tag of the node that issued it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperationId {
    /// Hybrid-logical-clock time, microseconds since the Unix epoch (approximately).
    pub time_us: u64,
    /// The issuing node's tag, [`node_tag`] of its public key.
    pub node: u64,
}

/// The 8-byte tag of a node in operation ids: the first 8 bytes of BLAKE3(public key),
/// big-endian.
pub fn node_tag(author: &PublicKey) -> u64 {
    let hash = blake3::hash(&author.to_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

impl OperationId {
    /// The smallest id.
    pub const MIN: OperationId = OperationId {
        time_us: 0,
        node: 0,
    };
    /// The largest id.
    pub const MAX: OperationId = OperationId {
        time_us: u64::MAX,
        node: u64::MAX,
    };

    /// The id issued at `time_us` by `author`.
    pub fn new(time_us: u64, author: &PublicKey) -> OperationId {
        OperationId {
            time_us,
            node: node_tag(author),
        }
    }

    /// The 16-byte form: `time_us` then `node`, big-endian. Byte order is id order.
    pub fn to_bytes(&self) -> [u8; OPERATION_ID_LEN] {
        let mut out = [0u8; OPERATION_ID_LEN];
        out[..8].copy_from_slice(&self.time_us.to_be_bytes());
        out[8..].copy_from_slice(&self.node.to_be_bytes());
        out
    }

    /// Parses the 16-byte form.
    pub fn from_bytes(bytes: &[u8; OPERATION_ID_LEN]) -> OperationId {
        let mut time = [0u8; 8];
        let mut node = [0u8; 8];
        time.copy_from_slice(&bytes[..8]);
        node.copy_from_slice(&bytes[8..]);
        OperationId {
            time_us: u64::from_be_bytes(time),
            node: u64::from_be_bytes(node),
        }
    }

    /// Parses the 16-byte form from a slice of any length; `None` unless it is 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<OperationId> {
        <&[u8; OPERATION_ID_LEN]>::try_from(bytes)
            .ok()
            .map(OperationId::from_bytes)
    }

    /// Whether `author` issued this id (its node tag matches).
    pub fn is_from(&self, author: &PublicKey) -> bool {
        self.node == node_tag(author)
    }
}

/// The text form: the 16 bytes as 32 lowercase hex digits (sorts like the ids).
impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}", self.time_us, self.node)
    }
}

impl fmt::Debug for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperationId({self})")
    }
}

/// Why an operation id's text form was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationIdTextError;

impl fmt::Display for OperationIdTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an operation id is 32 hexadecimal digits")
    }
}

impl std::error::Error for OperationIdTextError {}

impl FromStr for OperationId {
    type Err = OperationIdTextError;

    fn from_str(text: &str) -> Result<OperationId, OperationIdTextError> {
        let text = text.trim();
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(OperationIdTextError);
        }
        let time_us = u64::from_str_radix(&text[..16], 16).map_err(|_| OperationIdTextError)?;
        let node = u64::from_str_radix(&text[16..], 16).map_err(|_| OperationIdTextError)?;
        Ok(OperationId { time_us, node })
    }
}

impl Encode for OperationId {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.to_bytes().encode(encoder)
    }
}

impl<Context> Decode<Context> for OperationId {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, BincodeDecodeError> {
        Ok(OperationId::from_bytes(&<[u8; OPERATION_ID_LEN]>::decode(
            decoder,
        )?))
    }
}

bincode::impl_borrow_decode!(OperationId);

/// The hybrid logical clock step: `count` consecutive times issued after `last_time_us` when
/// the wall clock reads `wall_us`, starting at `max(wall_us, last_time_us + 1)`. The largest
/// time ever issued is `u64::MAX - 1` (the range's end must be representable).
pub fn next_times(last_time_us: u64, wall_us: u64, count: u32) -> Result<Range<u64>, IdError> {
    let after_last = last_time_us.checked_add(1).ok_or(IdError::ClockExhausted)?;
    let first = wall_us.max(after_last);
    let end = first
        .checked_add(u64::from(count))
        .ok_or(IdError::ClockExhausted)?;
    Ok(first..end)
}

/// Issues the ids of one node. Pure: the wall time is an argument, and persistence is the
/// caller's (the chain store keeps the last issued time, see
/// [`ChainStore::next_operation_time`](super::ChainStore::next_operation_time)).
///
/// ```
/// use exo::chain::IdGenerator;
/// use exocore_protocol::identity::Keypair;
///
/// let node = Keypair::generate().public();
/// let mut ids = IdGenerator::new(&node, 0);
/// let a = ids.next(1_000).unwrap();
/// let b = ids.next(500).unwrap(); // the wall clock stepped back
/// assert!(b > a);
/// assert_eq!(b.time_us, 1_001);
/// ```
#[derive(Debug, Clone)]
pub struct IdGenerator {
    node: u64,
    last_time_us: u64,
}

impl IdGenerator {
    /// A generator for `author` whose next id is strictly after `last_time_us` (0 for a node
    /// that never issued one).
    pub fn new(author: &PublicKey, last_time_us: u64) -> IdGenerator {
        IdGenerator {
            node: node_tag(author),
            last_time_us,
        }
    }

    /// The next id, at `max(wall_us, last + 1)`.
    pub fn next(&mut self, wall_us: u64) -> Result<OperationId, IdError> {
        let times = next_times(self.last_time_us, wall_us, 1)?;
        self.last_time_us = times.start;
        Ok(OperationId {
            time_us: times.start,
            node: self.node,
        })
    }

    /// Moves the clock past `time_us` (a time seen in another node's operation), so ids
    /// issued afterwards sort after it. Callers should bound how far in the future a remote
    /// time may be before observing it.
    pub fn observe(&mut self, time_us: u64) {
        self.last_time_us = self.last_time_us.max(time_us);
    }

    /// The last time issued or observed; the next id is strictly after it.
    pub fn last_time_us(&self) -> u64 {
        self.last_time_us
    }

    /// The node tag of the ids issued.
    pub fn node(&self) -> u64 {
        self.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exocore_protocol::identity::Keypair;

    #[test]
    fn ids_strictly_increase_when_the_wall_clock_steps_back() {
        let node = Keypair::generate().public();
        let mut ids = IdGenerator::new(&node, 0);
        let mut last = OperationId::MIN;
        // Wall clock: forward, stuck, back by a second, forward again.
        let walls = [10, 20, 20, 20, 5, 1_000_000, 0, 0, 1_000_001, 2_000_000];
        for wall in walls {
            let id = ids.next(wall).unwrap();
            assert!(id > last, "{id} after {last} at wall {wall}");
            assert!(id.time_us >= wall);
            assert!(id.is_from(&node));
            last = id;
        }
    }

    #[test]
    fn ids_of_two_nodes_never_collide_at_the_same_time() {
        let a = Keypair::generate().public();
        let b = Keypair::generate().public();
        let id_a = IdGenerator::new(&a, 0).next(42).unwrap();
        let id_b = IdGenerator::new(&b, 0).next(42).unwrap();
        assert_eq!(id_a.time_us, id_b.time_us);
        assert_ne!(id_a, id_b);
        assert!(!id_a.is_from(&b));
    }

    #[test]
    fn observe_moves_later_ids_after_remote_ones() {
        let node = Keypair::generate().public();
        let mut ids = IdGenerator::new(&node, 0);
        ids.observe(5_000);
        assert_eq!(ids.next(100).unwrap().time_us, 5_001);
        ids.observe(10); // the past changes nothing
        assert_eq!(ids.next(100).unwrap().time_us, 5_002);
    }

    #[test]
    fn clock_exhaustion_is_an_error_not_a_wrap() {
        let node = Keypair::generate().public();
        let mut ids = IdGenerator::new(&node, u64::MAX - 2);
        assert_eq!(ids.next(0).unwrap().time_us, u64::MAX - 1);
        assert_eq!(ids.next(0), Err(IdError::ClockExhausted));
        assert_eq!(next_times(5, 0, 3).unwrap(), 6..9);
        assert_eq!(next_times(5, 100, 3).unwrap(), 100..103);
        assert!(next_times(0, u64::MAX, 2).is_err());
    }

    #[test]
    fn byte_order_is_id_order_and_text_round_trips() {
        let ids = [
            OperationId {
                time_us: 1,
                node: u64::MAX,
            },
            OperationId {
                time_us: 2,
                node: 0,
            },
            OperationId {
                time_us: 2,
                node: 1,
            },
            OperationId {
                time_us: 256,
                node: 0,
            },
        ];
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_bytes() < pair[1].to_bytes());
        }
        for id in ids {
            assert_eq!(OperationId::from_bytes(&id.to_bytes()), id);
            assert_eq!(id.to_string().parse::<OperationId>().unwrap(), id);
            let bytes = super::super::encoding::encode(&id);
            assert_eq!(bytes, id.to_bytes());
        }
        assert!("xyz".parse::<OperationId>().is_err());
        assert!("0".repeat(31).parse::<OperationId>().is_err());
    }
}
