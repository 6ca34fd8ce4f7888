//! The two parties of a join as state machines: no I/O, no clock. Each takes the bytes the
//! rendezvous server relayed from the other party and returns the bytes to relay back, and
//! the events its caller must act on (ask the user, admit the node, install the cell).
//! Specified in `spec/join.md` sections 4 to 6.
//!
//! Order of the exchange (J the joining node, M the member):
//!
//! ```text
//! J -> M  PAKE(A)                M -> J  PAKE(B)          (independent, either order)
//! J -> M  CONFIRM(joiner)        M -> J  CONFIRM(member)  (each after the other's PAKE)
//! J -> M  sealed Request         (after M's confirmation checked)
//! M -> J  sealed Offer | Refused (after the member's user said yes)
//! J -> M  sealed Ready | Refused (after J checked it can install that cell)
//! M -> J  sealed Answer          (after the member admitted the node)
//! J -> M  sealed Installed | Refused
//! ```

use rand_core::{CryptoRng, RngCore};

use super::error::JoinError;
use super::message::{Answer, Message, Request};
use super::pake::{Keys, Pake, Side, PAKE_MESSAGE_LEN};
use super::pin::Pin;
use super::seal::Direction;

/// Relayed message kind: a SPAKE2 message (33 bytes follow).
pub const KIND_PAKE: u8 = 1;
/// Relayed message kind: a key confirmation (32 bytes follow).
pub const KIND_CONFIRM: u8 = 2;
/// Relayed message kind: a sealed JSON document.
pub const KIND_SEALED: u8 = 3;

/// What one call produced: bytes to relay to the other party, and maybe an event.
#[derive(Debug, Default, PartialEq)]
pub struct Step<E> {
    /// Relay these, in order.
    pub send: Vec<Vec<u8>>,
    /// Act on this.
    pub event: Option<E>,
}

enum Phase {
    Idle,
    AwaitPake(Pake),
    AwaitConfirm(Keys),
    Open,
    Closed,
}

/// The PAKE, key confirmation and sealed channel shared by both parties.
struct Channel {
    side: Side,
    pin: Pin,
    phase: Phase,
    send: Option<Direction>,
    recv: Option<Direction>,
}

/// What the channel made of a relayed message.
enum Received {
    /// Handshake progress: relay `send`; `opened` once the other side proved the PIN.
    Handshake { send: Vec<Vec<u8>>, opened: bool },
    /// A document from the other party.
    Message(Box<Message>),
}

fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

impl Channel {
    fn new(side: Side, pin: Pin) -> Channel {
        Channel {
            side,
            pin,
            phase: Phase::Idle,
            send: None,
            recv: None,
        }
    }

    fn start(&mut self, rng: impl RngCore + CryptoRng) -> Result<Vec<u8>, JoinError> {
        if !matches!(self.phase, Phase::Idle) {
            return Err(JoinError::Protocol("the exchange was started twice".into()));
        }
        let (pake, message) = Pake::start(self.side, &self.pin, rng);
        self.phase = Phase::AwaitPake(pake);
        Ok(framed(KIND_PAKE, &message))
    }

    fn receive(&mut self, bytes: &[u8]) -> Result<Received, JoinError> {
        let result = self.receive_inner(bytes);
        if result.is_err() {
            self.phase = Phase::Closed;
        }
        result
    }

    fn receive_inner(&mut self, bytes: &[u8]) -> Result<Received, JoinError> {
        let (&kind, body) = bytes
            .split_first()
            .ok_or_else(|| JoinError::Protocol("an empty message".into()))?;
        match (std::mem::replace(&mut self.phase, Phase::Closed), kind) {
            (Phase::AwaitPake(pake), KIND_PAKE) => {
                if body.len() != PAKE_MESSAGE_LEN {
                    return Err(JoinError::Protocol(format!(
                        "a PAKE message of {} bytes instead of {PAKE_MESSAGE_LEN}",
                        body.len()
                    )));
                }
                let keys = pake.finish(body).map_err(|_| {
                    JoinError::Protocol("the other side's PAKE message is not valid".into())
                })?;
                let own = match self.side {
                    Side::Joiner => keys.joiner_confirmation,
                    Side::Member => keys.member_confirmation,
                };
                self.phase = Phase::AwaitConfirm(keys);
                Ok(Received::Handshake {
                    send: vec![framed(KIND_CONFIRM, &own)],
                    opened: false,
                })
            }
            (Phase::AwaitConfirm(keys), KIND_CONFIRM) => {
                let (expected, send_key, recv_key) = match self.side {
                    Side::Joiner => (
                        keys.member_confirmation,
                        keys.joiner_to_member,
                        keys.member_to_joiner,
                    ),
                    Side::Member => (
                        keys.joiner_confirmation,
                        keys.member_to_joiner,
                        keys.joiner_to_member,
                    ),
                };
                if body != expected {
                    return Err(JoinError::WrongPin);
                }
                self.send = Some(Direction::new(&send_key));
                self.recv = Some(Direction::new(&recv_key));
                self.phase = Phase::Open;
                Ok(Received::Handshake {
                    send: Vec::new(),
                    opened: true,
                })
            }
            (Phase::Open, KIND_SEALED) => {
                let plaintext = self
                    .recv
                    .as_mut()
                    .and_then(|d| d.open(body))
                    .ok_or_else(|| {
                        JoinError::Protocol(
                            "a sealed message does not open: replayed, reordered or altered on the way"
                                .into(),
                        )
                    })?;
                let message = Message::from_json(&plaintext)
                    .map_err(|e| JoinError::Protocol(format!("a malformed message: {e}")))?;
                self.phase = Phase::Open;
                Ok(Received::Message(Box::new(message)))
            }
            (Phase::Idle, _) => Err(JoinError::Protocol(
                "a message before the exchange started".into(),
            )),
            (Phase::Closed, _) => Err(JoinError::Protocol(
                "a message after the exchange ended".into(),
            )),
            (_, kind) => Err(JoinError::Protocol(format!(
                "a message of kind {kind} out of order (a replay, or not an exo peer)"
            ))),
        }
    }

    fn seal(&mut self, message: &Message) -> Result<Vec<u8>, JoinError> {
        let direction = self
            .send
            .as_mut()
            .filter(|_| matches!(self.phase, Phase::Open))
            .ok_or_else(|| JoinError::Protocol("sending before the PIN was confirmed".into()))?;
        Ok(framed(KIND_SEALED, &direction.seal(&message.to_json())))
    }
}

/// Turns a document that does not belong here into an error (a `Refused` into the reason).
fn unexpected(message: Message, waiting_for: &str) -> JoinError {
    match message {
        Message::Refused { reason } => JoinError::Refused(reason),
        other => JoinError::Protocol(format!(
            "got `{}` while waiting for `{waiting_for}`",
            other.kind()
        )),
    }
}

/// A call that does not fit the party's state (a caller's bug, or a message out of order).
fn expect_state<S: PartialEq + std::fmt::Debug>(
    side: &str,
    now: S,
    wanted: S,
) -> Result<(), JoinError> {
    if now == wanted {
        Ok(())
    } else {
        Err(JoinError::Protocol(format!(
            "the {side} side is in state {now:?}, not {wanted:?}"
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinerState {
    Handshake,
    AwaitOffer,
    Deciding,
    AwaitAnswer,
    Installing,
    Done,
}

/// What the joining node's caller must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinerEvent {
    /// The member accepted; check the cell can be installed, then [`Joiner::ready`] or
    /// [`Joiner::refuse`].
    Offer {
        /// The cell's id.
        cell: exocore_protocol::identity::PublicKey,
        /// Its name.
        cell_name: String,
        /// The member's name.
        member: String,
    },
    /// The node is admitted: open and install the answer, then [`Joiner::installed`] or
    /// [`Joiner::refuse`].
    Answer(Answer),
}

/// The joining node's side.
pub struct Joiner {
    channel: Channel,
    request: Request,
    state: JoinerState,
}

impl Joiner {
    /// A joining node that will send `request`, with the PIN it showed.
    pub fn new(pin: Pin, request: Request) -> Joiner {
        Joiner {
            channel: Channel::new(Side::Joiner, pin),
            request,
            state: JoinerState::Handshake,
        }
    }

    /// The member arrived: the PAKE message to relay.
    pub fn start(&mut self, rng: impl RngCore + CryptoRng) -> Result<Vec<u8>, JoinError> {
        self.channel.start(rng)
    }

    /// A message relayed from the member.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Step<JoinerEvent>, JoinError> {
        match self.channel.receive(bytes)? {
            Received::Handshake { mut send, opened } => {
                if opened {
                    send.push(self.channel.seal(&Message::Request(self.request.clone()))?);
                    self.state = JoinerState::AwaitOffer;
                }
                Ok(Step { send, event: None })
            }
            Received::Message(message) => match (self.state, *message) {
                (
                    JoinerState::AwaitOffer,
                    Message::Offer {
                        cell,
                        cell_name,
                        member,
                    },
                ) => {
                    self.state = JoinerState::Deciding;
                    Ok(Step {
                        send: Vec::new(),
                        event: Some(JoinerEvent::Offer {
                            cell,
                            cell_name,
                            member,
                        }),
                    })
                }
                (JoinerState::AwaitAnswer, Message::Answer(answer)) => {
                    self.state = JoinerState::Installing;
                    Ok(Step {
                        send: Vec::new(),
                        event: Some(JoinerEvent::Answer(answer)),
                    })
                }
                (JoinerState::AwaitOffer, other) => Err(unexpected(other, "offer")),
                (JoinerState::AwaitAnswer, other) => Err(unexpected(other, "answer")),
                (_, other) => Err(unexpected(other, "nothing")),
            },
        }
    }

    /// This node can install the offered cell: ask to be admitted.
    pub fn ready(&mut self) -> Result<Vec<u8>, JoinError> {
        self.expect(JoinerState::Deciding)?;
        self.state = JoinerState::AwaitAnswer;
        self.channel.seal(&Message::Ready {})
    }

    /// The answer is installed.
    pub fn installed(&mut self) -> Result<Vec<u8>, JoinError> {
        self.expect(JoinerState::Installing)?;
        self.state = JoinerState::Done;
        self.channel.seal(&Message::Installed {})
    }

    /// Declines the offer or the answer, with a reason for the member's user.
    pub fn refuse(&mut self, reason: &str) -> Result<Vec<u8>, JoinError> {
        self.state = JoinerState::Done;
        self.channel.seal(&Message::Refused {
            reason: reason.to_string(),
        })
    }

    fn expect(&self, state: JoinerState) -> Result<(), JoinError> {
        expect_state("joining", self.state, state)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    Handshake,
    AwaitRequest,
    Deciding,
    AwaitReady,
    Admitting,
    AwaitInstalled,
    Done,
}

/// What the member's caller must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberEvent {
    /// The joining node's (verified) request: ask the user, then [`Member::offer`] or
    /// [`Member::refuse`].
    Request(Box<Request>),
    /// The joining node is ready: admit it, then [`Member::answer`].
    Ready,
    /// The joining node installed the cell: done.
    Installed,
}

/// The member's side.
pub struct Member {
    channel: Channel,
    state: MemberState,
}

impl Member {
    /// A member that was given `pin`.
    pub fn new(pin: Pin) -> Member {
        Member {
            channel: Channel::new(Side::Member, pin),
            state: MemberState::Handshake,
        }
    }

    /// The slot is claimed: the PAKE message to relay.
    pub fn start(&mut self, rng: impl RngCore + CryptoRng) -> Result<Vec<u8>, JoinError> {
        self.channel.start(rng)
    }

    /// A message relayed from the joining node.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Step<MemberEvent>, JoinError> {
        let event = match self.channel.receive(bytes)? {
            Received::Handshake { send, opened } => {
                if opened {
                    self.state = MemberState::AwaitRequest;
                }
                return Ok(Step { send, event: None });
            }
            Received::Message(message) => match (self.state, *message) {
                (MemberState::AwaitRequest, Message::Request(request)) => {
                    request.verify().map_err(|e| {
                        JoinError::Invalid(format!("the joining node's request is not valid: {e}"))
                    })?;
                    self.state = MemberState::Deciding;
                    MemberEvent::Request(Box::new(request))
                }
                (MemberState::AwaitReady, Message::Ready {}) => {
                    self.state = MemberState::Admitting;
                    MemberEvent::Ready
                }
                (MemberState::AwaitInstalled, Message::Installed {}) => {
                    self.state = MemberState::Done;
                    MemberEvent::Installed
                }
                (MemberState::AwaitRequest, other) => return Err(unexpected(other, "request")),
                (MemberState::AwaitReady, other) => return Err(unexpected(other, "ready")),
                (MemberState::AwaitInstalled, other) => return Err(unexpected(other, "installed")),
                (_, other) => return Err(unexpected(other, "nothing")),
            },
        };
        Ok(Step {
            send: Vec::new(),
            event: Some(event),
        })
    }

    /// The user accepted the request: offer the cell.
    pub fn offer(
        &mut self,
        cell: exocore_protocol::identity::PublicKey,
        cell_name: &str,
        member: &str,
    ) -> Result<Vec<u8>, JoinError> {
        self.expect(MemberState::Deciding)?;
        self.state = MemberState::AwaitReady;
        self.channel.seal(&Message::Offer {
            cell,
            cell_name: cell_name.to_string(),
            member: member.to_string(),
        })
    }

    /// The node is admitted: send its answer.
    pub fn answer(&mut self, answer: Answer) -> Result<Vec<u8>, JoinError> {
        self.expect(MemberState::Admitting)?;
        self.state = MemberState::AwaitInstalled;
        self.channel.seal(&Message::Answer(answer))
    }

    /// Declines, with a reason for the joining node's user.
    pub fn refuse(&mut self, reason: &str) -> Result<Vec<u8>, JoinError> {
        self.state = MemberState::Done;
        self.channel.seal(&Message::Refused {
            reason: reason.to_string(),
        })
    }

    fn expect(&self, state: MemberState) -> Result<(), JoinError> {
        expect_state("member", self.state, state)
    }
}
