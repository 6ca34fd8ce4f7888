//! The consensus acceptor's durable state: at the height being decided, the highest round
//! promised and the block accepted in the highest round. Paxos is only safe if an acceptor
//! never forgets these across a crash, so the engine emits a new [`VoteState`] in
//! [`Output::vote`](super::Output) and [`super::apply`] writes it into the chain store's
//! metadata (key `vote`, [`Batch::put_vote`](crate::chain::Batch::put_vote)) in the **same
//! LMDB transaction** as the step's other writes, before anything is sent. A crash therefore
//! never separates a vote from the writes of the step that made it.
//!
//! The stored value is the [`VoteState`] encoding in the wire configuration
//! (`spec/replication.md` section 5.2):
//!
//! ```text
//! height    u64 LE
//! promised  u32 LE
//! accepted  u8 0 (none) | u8 1, round u32 LE, block (spec/chain.md section 4, no signatures)
//! ```

use bincode::{Decode, Encode};
use exocore_protocol::error::WireError;
use exocore_protocol::wire;

use super::message::AcceptedBlock;

/// An acceptor's promise and acceptance at one height.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct VoteState {
    /// The height these apply to. A node refuses to vote at any lower height.
    pub height: u64,
    /// The highest round promised: nothing from a lower round is accepted.
    pub promised: u32,
    /// The block accepted in the highest round, if any.
    pub accepted: Option<AcceptedBlock>,
}

impl VoteState {
    /// The state of a height where nothing was promised or accepted.
    pub fn empty(height: u64) -> VoteState {
        VoteState {
            height,
            promised: 0,
            accepted: None,
        }
    }

    /// The stored encoding (see the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Unlimited configuration: encoding into a Vec never fails for these types (fixed
        // integers, byte arrays, and a block, itself bounded by construction).
        let config = bincode::config::standard()
            .with_little_endian()
            .with_fixed_int_encoding();
        match bincode::encode_to_vec(self, config) {
            Ok(bytes) => bytes,
            Err(e) => unreachable!("encoding a vote into memory failed: {e}"),
        }
    }

    /// Decodes a stored vote. Bounded like every wire decode: no length field can make it
    /// allocate beyond what the input justifies; trailing bytes are refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<VoteState, WireError> {
        wire::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Block, BlockHeader};
    use exocore_protocol::identity::Keypair;

    #[test]
    fn votes_round_trip_and_refuse_damage() {
        let empty = VoteState {
            height: 7,
            promised: 3,
            accepted: None,
        };
        let bytes = empty.to_bytes();
        assert_eq!(bytes.len(), 8 + 4 + 1);
        // The example of spec/replication.md section 5.2.
        assert_eq!(
            crate::chain::hex(&VoteState::empty(5).to_bytes()[..8]),
            "0500000000000000"
        );
        let mut example = VoteState::empty(5);
        example.promised = 2;
        assert_eq!(
            crate::chain::hex(&example.to_bytes()),
            "05000000000000000200000000"
        );
        assert_eq!(VoteState::from_bytes(&bytes).unwrap(), empty);

        let cell = Keypair::from_seed(&[1; 32]);
        let genesis = Block::genesis(&cell, 1);
        let tip: &BlockHeader = &genesis.header;
        let block = Block::propose(tip, &cell.public(), 2, Vec::new()).unwrap();
        let full = VoteState {
            height: 1,
            promised: 2,
            accepted: Some(AcceptedBlock { round: 2, block }),
        };
        let bytes = full.to_bytes();
        assert_eq!(VoteState::from_bytes(&bytes).unwrap(), full);
        assert!(VoteState::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(VoteState::from_bytes(&longer).is_err());
        let mut flipped = bytes;
        flipped[12] = 7; // the Option tag
        assert!(VoteState::from_bytes(&flipped).is_err());
    }
}
