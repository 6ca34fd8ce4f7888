//! The rendezvous server's bookkeeping: open slots, who is in each, limits and rate limits.
//! No I/O and no clock: times are arguments, and each party is a handle of the caller's
//! choosing (the server uses the sending half of the connection's queue).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;

use super::frame::ErrorCode;
use crate::join::pin::SLOT_MAX;

/// The server's limits (`spec/join.md` section 2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// How long an unclaimed slot stays open, and how long a claimed one may relay.
    pub ttl_ms: u64,
    /// Slots open at once on the whole server.
    pub slots_max: usize,
    /// Slots open at once from one IP address.
    pub slots_per_ip_max: usize,
    /// Claims (right or wrong) one IP address may make per minute.
    pub claims_per_ip_per_minute: usize,
    /// Connections at once from one IP address.
    pub connections_per_ip_max: usize,
    /// Messages one slot may relay, both ways together.
    pub messages_per_slot_max: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            ttl_ms: 10 * 60 * 1000,
            slots_max: 1000,
            slots_per_ip_max: 8,
            claims_per_ip_per_minute: 20,
            connections_per_ip_max: 32,
            messages_per_slot_max: 32,
        }
    }
}

/// The two parties of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The node that opened the slot.
    Joiner,
    /// The member that claimed it.
    Member,
}

/// Why the registry said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The server has `slots_max` slots open.
    Full,
    /// This address has too many slots open.
    TooManySlots(usize),
    /// This address made too many claims in the last minute.
    TooManyClaims(usize),
    /// This address has too many connections open.
    TooManyConnections(usize),
    /// No open, unclaimed slot with this number.
    NoSuchSlot(u32),
    /// The slot relayed its quota of messages.
    TooManyMessages(u32),
    /// A relay from a slot without a second party.
    NotPaired,
}

impl Refusal {
    /// The code sent in the `ERROR` frame.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Full => ErrorCode::Full,
            Refusal::TooManySlots(_)
            | Refusal::TooManyClaims(_)
            | Refusal::TooManyConnections(_) => ErrorCode::RateLimited,
            Refusal::NoSuchSlot(_) => ErrorCode::NoSuchSlot,
            Refusal::TooManyMessages(_) => ErrorCode::TooManyMessages,
            Refusal::NotPaired => ErrorCode::NotPaired,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full => write!(f, "the rendezvous server has too many joins in progress; try again in a few minutes"),
            Refusal::TooManySlots(limit) => write!(f, "too many joins open from this address (limit {limit}); finish or cancel one first"),
            Refusal::TooManyClaims(limit) => write!(f, "too many PIN attempts from this address (limit {limit} a minute); wait a minute"),
            Refusal::TooManyConnections(limit) => write!(f, "too many connections from this address (limit {limit})"),
            Refusal::NoSuchSlot(slot) => write!(f, "no join is waiting under number {slot}: the PIN expired, was already used, or was mistyped"),
            Refusal::TooManyMessages(limit) => write!(f, "the join relayed its {limit} messages"),
            Refusal::NotPaired => write!(f, "a message before the other party arrived"),
        }
    }
}

struct Slot<H> {
    joiner_ip: IpAddr,
    joiner: H,
    member: Option<H>,
    deadline_ms: u64,
    relayed: u32,
}

/// The open slots and the per-address counters.
pub struct Registry<H> {
    limits: Limits,
    slots: HashMap<u32, Slot<H>>,
    /// Numbers recently closed, not handed out again until the time given, so a reused PIN
    /// finds no slot rather than someone else's.
    resting: HashMap<u32, u64>,
    claims: HashMap<IpAddr, VecDeque<u64>>,
    connections: HashMap<IpAddr, usize>,
}

const MINUTE_MS: u64 = 60_000;

impl<H: Clone> Registry<H> {
    /// An empty registry.
    pub fn new(limits: Limits) -> Registry<H> {
        Registry {
            limits,
            slots: HashMap::new(),
            resting: HashMap::new(),
            claims: HashMap::new(),
            connections: HashMap::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Slots open now.
    pub fn open_slots(&self) -> usize {
        self.slots.len()
    }

    /// A connection from `ip` begins.
    pub fn connect(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        let count = self.connections.entry(ip).or_insert(0);
        if *count >= self.limits.connections_per_ip_max {
            return Err(Refusal::TooManyConnections(
                self.limits.connections_per_ip_max,
            ));
        }
        *count += 1;
        Ok(())
    }

    /// A connection from `ip` ended.
    pub fn disconnect(&mut self, ip: IpAddr) {
        if let Some(count) = self.connections.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.connections.remove(&ip);
            }
        }
    }

    /// Opens a slot for a joining node at `ip`; `random` picks its number. Returns the number
    /// and the slot's deadline.
    pub fn open(
        &mut self,
        ip: IpAddr,
        joiner: H,
        now_ms: u64,
        random: u64,
    ) -> Result<(u32, u64), Refusal> {
        if self.slots.len() >= self.limits.slots_max {
            return Err(Refusal::Full);
        }
        let from_ip = self.slots.values().filter(|s| s.joiner_ip == ip).count();
        if from_ip >= self.limits.slots_per_ip_max {
            return Err(Refusal::TooManySlots(self.limits.slots_per_ip_max));
        }
        let slot = self.free_number(random).ok_or(Refusal::Full)?;
        let deadline_ms = now_ms + self.limits.ttl_ms;
        self.slots.insert(
            slot,
            Slot {
                joiner_ip: ip,
                joiner,
                member: None,
                deadline_ms,
                relayed: 0,
            },
        );
        Ok((slot, deadline_ms))
    }

    /// Short numbers while few are in use: the range grows tenfold when half of it is taken.
    fn free_number(&self, random: u64) -> Option<u32> {
        let in_use = self.slots.len() + self.resting.len();
        let range = [99u32, 999, 9_999, SLOT_MAX]
            .into_iter()
            .find(|r| (in_use as u64 + 1) * 2 <= u64::from(*r))
            .unwrap_or(SLOT_MAX);
        let start = (random % u64::from(range)) as u32;
        (0..range)
            .map(|i| (start + i) % range + 1)
            .find(|n| !self.slots.contains_key(n) && !self.resting.contains_key(n))
    }

    /// A member at `ip` claims `slot`: the slot is burned (no second claim finds it, whatever
    /// happens next). Returns the joining node's handle, to tell it.
    pub fn claim(&mut self, slot: u32, ip: IpAddr, member: H, now_ms: u64) -> Result<H, Refusal> {
        let window = self.claims.entry(ip).or_default();
        while window.front().is_some_and(|t| *t + MINUTE_MS <= now_ms) {
            window.pop_front();
        }
        if window.len() >= self.limits.claims_per_ip_per_minute {
            return Err(Refusal::TooManyClaims(self.limits.claims_per_ip_per_minute));
        }
        window.push_back(now_ms);
        match self.slots.get_mut(&slot) {
            Some(open) if open.member.is_none() => {
                open.member = Some(member);
                open.deadline_ms = now_ms + self.limits.ttl_ms;
                Ok(open.joiner.clone())
            }
            _ => Err(Refusal::NoSuchSlot(slot)),
        }
    }

    /// A message from `from` in `slot`: returns the handle of the other party.
    pub fn relay(&mut self, slot: u32, from: Party) -> Result<H, Refusal> {
        let open = self.slots.get_mut(&slot).ok_or(Refusal::NoSuchSlot(slot))?;
        if open.relayed >= self.limits.messages_per_slot_max {
            return Err(Refusal::TooManyMessages(self.limits.messages_per_slot_max));
        }
        let to = match from {
            Party::Joiner => open.member.clone().ok_or(Refusal::NotPaired)?,
            Party::Member => open.joiner.clone(),
        };
        open.relayed += 1;
        Ok(to)
    }

    /// `party` left `slot` (or broke a rule): the slot closes. Returns the other party's
    /// handle, if there is one, to tell it.
    pub fn leave(&mut self, slot: u32, party: Party, now_ms: u64) -> Option<H> {
        let closed = self.slots.remove(&slot)?;
        self.resting.insert(slot, now_ms + self.limits.ttl_ms);
        match party {
            Party::Joiner => closed.member,
            Party::Member => Some(closed.joiner),
        }
    }

    /// Closes every slot past its deadline; returns their numbers and parties. Also forgets
    /// resting numbers and claim counts that no longer matter.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(u32, Vec<H>)> {
        let expired: Vec<u32> = self
            .slots
            .iter()
            .filter(|(_, s)| s.deadline_ms <= now_ms)
            .map(|(n, _)| *n)
            .collect();
        let mut out = Vec::new();
        for number in expired {
            if let Some(slot) = self.slots.remove(&number) {
                self.resting.insert(number, now_ms + self.limits.ttl_ms);
                let mut parties = vec![slot.joiner];
                parties.extend(slot.member);
                out.push((number, parties));
            }
        }
        self.resting.retain(|_, until| *until > now_ms);
        self.claims
            .retain(|_, w| w.back().is_some_and(|t| *t + MINUTE_MS > now_ms));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn small() -> Limits {
        Limits {
            ttl_ms: 1000,
            slots_max: 3,
            slots_per_ip_max: 2,
            claims_per_ip_per_minute: 3,
            connections_per_ip_max: 2,
            messages_per_slot_max: 2,
        }
    }

    #[test]
    fn a_slot_is_claimed_once_and_relays_both_ways() {
        let mut r = Registry::new(small());
        let (slot, _) = r.open(ip(1), "joiner", 0, 5).unwrap();
        assert!((1..=99).contains(&slot));
        assert_eq!(r.relay(slot, Party::Joiner), Err(Refusal::NotPaired));
        assert_eq!(r.claim(slot, ip(2), "member", 1), Ok("joiner"));
        assert_eq!(
            r.claim(slot, ip(3), "thief", 2),
            Err(Refusal::NoSuchSlot(slot))
        );
        assert_eq!(r.relay(slot, Party::Joiner), Ok("member"));
        assert_eq!(r.relay(slot, Party::Member), Ok("joiner"));
        assert_eq!(
            r.relay(slot, Party::Member),
            Err(Refusal::TooManyMessages(2))
        );
        assert_eq!(r.leave(slot, Party::Member, 3), Some("joiner"));
        assert_eq!(
            r.claim(slot, ip(2), "member", 4),
            Err(Refusal::NoSuchSlot(slot))
        );
    }

    #[test]
    fn numbers_are_not_reused_while_resting() {
        let mut r = Registry::new(small());
        let (slot, _) = r.open(ip(1), "a", 0, 0).unwrap();
        r.leave(slot, Party::Joiner, 0);
        let (next, _) = r.open(ip(1), "b", 1, 0).unwrap();
        assert_ne!(next, slot, "same random start, but the number rests");
    }

    #[test]
    fn limits_per_address_and_in_total() {
        let mut r = Registry::new(small());
        r.open(ip(1), 1, 0, 1).unwrap();
        r.open(ip(1), 2, 0, 2).unwrap();
        assert_eq!(r.open(ip(1), 3, 0, 3), Err(Refusal::TooManySlots(2)));
        r.open(ip(2), 4, 0, 4).unwrap();
        assert_eq!(r.open(ip(3), 5, 0, 5), Err(Refusal::Full));
        for n in 0..3 {
            assert!(matches!(
                r.claim(9_000 + n, ip(9), 0, 10),
                Err(Refusal::NoSuchSlot(_))
            ));
        }
        assert_eq!(r.claim(1, ip(9), 0, 10), Err(Refusal::TooManyClaims(3)));
        // A minute later the address may try again.
        assert!(matches!(
            r.claim(9_999, ip(9), 0, 10 + MINUTE_MS),
            Err(Refusal::NoSuchSlot(_))
        ));
        r.connect(ip(1)).unwrap();
        r.connect(ip(1)).unwrap();
        assert_eq!(r.connect(ip(1)), Err(Refusal::TooManyConnections(2)));
        r.disconnect(ip(1));
        r.connect(ip(1)).unwrap();
    }

    #[test]
    fn slots_expire_claimed_or_not() {
        let mut r = Registry::new(small());
        let (a, _) = r.open(ip(1), "a", 0, 1).unwrap();
        let (b, _) = r.open(ip(2), "b", 0, 2).unwrap();
        r.claim(b, ip(3), "m", 500).unwrap();
        let expired = r.expire(1000);
        assert_eq!(expired, vec![(a, vec!["a"])]);
        let expired = r.expire(1500);
        assert_eq!(expired, vec![(b, vec!["b", "m"])]);
        assert_eq!(r.open_slots(), 0);
    }
}
