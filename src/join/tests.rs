//! The exchange between the two state machines, and what a lying or replaying rendezvous
//! server can do to it: every replayed, altered, reordered or reflected message is refused.

use exocore_protocol::identity::Keypair;
use rand_core::OsRng;

use super::*;
use crate::config::{CellConfig, CellNode, Role};

const PIN: Pin = Pin {
    slot: 42,
    secret: 817_305,
};

fn request(node: &Keypair) -> Request {
    Request::new(
        node,
        "n2".into(),
        vec!["127.0.0.1:4000".into()],
        vec![Role::Store],
    )
}

/// Runs the handshake; returns both parties (open) and every relayed message, in order:
/// joiner's PAKE, member's PAKE, member's confirm, joiner's confirm, joiner's request.
fn handshake(joiner_pin: Pin, member_pin: Pin) -> (Joiner, Member, Vec<Vec<u8>>) {
    let node = Keypair::generate();
    let mut joiner = Joiner::new(joiner_pin, request(&node));
    let mut member = Member::new(member_pin);
    let j_pake = joiner.start(OsRng).unwrap();
    let m_pake = member.start(OsRng).unwrap();
    let m_step = member.receive(&j_pake).unwrap();
    let j_step = joiner.receive(&m_pake).unwrap();
    let mut log = vec![
        j_pake,
        m_pake,
        m_step.send[0].clone(),
        j_step.send[0].clone(),
    ];
    assert_eq!(j_step.send.len(), 1);
    let _ = member.receive(&j_step.send[0]);
    if let Ok(step) = joiner.receive(&m_step.send[0]) {
        log.extend(step.send);
    }
    (joiner, member, log)
}

/// Starts both parties and exchanges the PAKE messages; returns the confirmations they then
/// send: the member's, the joiner's.
fn exchange_pake(joiner: &mut Joiner, member: &mut Member) -> (Vec<u8>, Vec<u8>) {
    let j_pake = joiner.start(OsRng).unwrap();
    let m_pake = member.start(OsRng).unwrap();
    let m_confirm = member.receive(&j_pake).unwrap().send.remove(0);
    let j_confirm = joiner.receive(&m_pake).unwrap().send.remove(0);
    (m_confirm, j_confirm)
}

fn cell_for(request: &Request, cell_key: &Keypair) -> CellConfig {
    CellConfig {
        id: cell_key.public(),
        name: "home".into(),
        nodes: vec![CellNode {
            id: request.node,
            name: request.name.clone(),
            addresses: request.addresses.clone(),
            roles: request.roles.clone(),
        }],
        version: 0,
        initial: None,
    }
}

#[test]
fn full_exchange_delivers_request_and_answer() {
    let (mut joiner, mut member, log) = handshake(PIN, PIN);
    assert_eq!(log.len(), 5, "the joiner sends its request once confirmed");
    let Some(MemberEvent::Request(request)) = member.receive(&log[4]).unwrap().event else {
        panic!("no request");
    };
    assert_eq!(request.name, "n2");
    let cell_key = Keypair::generate();
    let offer = member.offer(cell_key.public(), "home", "n1").unwrap();
    let event = joiner.receive(&offer).unwrap().event;
    assert!(matches!(event, Some(JoinerEvent::Offer { ref cell_name, .. }) if cell_name == "home"));
    let ready = joiner.ready().unwrap();
    assert_eq!(
        member.receive(&ready).unwrap().event,
        Some(MemberEvent::Ready)
    );
    let cell = cell_for(&request, &cell_key);
    let answer = Answer::new(&cell_key, &request.node, &cell, true, [5; 32]);
    let sealed = member.answer(answer.clone()).unwrap();
    assert_eq!(
        joiner.receive(&sealed).unwrap().event,
        Some(JoinerEvent::Answer(answer))
    );
    let done = joiner.installed().unwrap();
    assert_eq!(
        member.receive(&done).unwrap().event,
        Some(MemberEvent::Installed)
    );
}

#[test]
fn wrong_pin_fails_on_both_sides_and_reveals_no_request() {
    let other = Pin {
        slot: 42,
        secret: 817_306,
    };
    let node = Keypair::generate();
    let mut joiner = Joiner::new(PIN, request(&node));
    let mut member = Member::new(other);
    let (m_confirm, j_confirm) = exchange_pake(&mut joiner, &mut member);
    assert_eq!(member.receive(&j_confirm).unwrap_err(), JoinError::WrongPin);
    assert_eq!(joiner.receive(&m_confirm).unwrap_err(), JoinError::WrongPin);
    // Both are closed: nothing more is accepted or sent.
    assert!(joiner.receive(&m_confirm).is_err());
    assert!(member.offer(node.public(), "home", "n1").is_err());
}

#[test]
fn replayed_messages_are_refused() {
    let (mut joiner, mut member, log) = handshake(PIN, PIN);
    member.receive(&log[4]).unwrap();
    // The server replays the joiner's request, its PAKE message, its confirmation.
    for replay in [&log[4], &log[0], &log[3]] {
        let (_, mut m, l) = handshake(PIN, PIN);
        m.receive(&l[4]).unwrap();
        assert!(
            matches!(m.receive(replay), Err(JoinError::Protocol(_))),
            "replay accepted"
        );
    }
    // A replay of the member's offer to the joiner.
    let offer = member
        .offer(Keypair::generate().public(), "home", "n1")
        .unwrap();
    joiner.receive(&offer).unwrap();
    joiner.ready().unwrap();
    assert!(matches!(
        joiner.receive(&offer),
        Err(JoinError::Protocol(_))
    ));
}

#[test]
fn altered_and_reordered_messages_are_refused() {
    let (_, mut member, log) = handshake(PIN, PIN);
    let mut altered = log[4].clone();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    assert!(matches!(
        member.receive(&altered),
        Err(JoinError::Protocol(_))
    ));

    // An altered confirmation reads as a wrong PIN: the exchange stops.
    let node = Keypair::generate();
    let mut joiner = Joiner::new(PIN, request(&node));
    let mut member = Member::new(PIN);
    let (_, mut confirm) = exchange_pake(&mut joiner, &mut member);
    confirm[5] ^= 0x80;
    assert_eq!(member.receive(&confirm).unwrap_err(), JoinError::WrongPin);

    // A sealed message before the confirmation, or a confirmation before the PAKE.
    let (mut joiner2, _, log2) = handshake(PIN, PIN);
    let mut fresh = Member::new(PIN);
    fresh.start(OsRng).unwrap();
    assert!(fresh.receive(&log2[4]).is_err());
    let mut fresh = Member::new(PIN);
    assert!(fresh.receive(&log2[0]).is_err(), "not started");
    // An answer before an offer.
    assert!(joiner2.installed().is_err());
}

#[test]
fn reflected_messages_are_refused() {
    // The server sends the joiner its own PAKE message back.
    let node = Keypair::generate();
    let mut joiner = Joiner::new(PIN, request(&node));
    let own = joiner.start(OsRng).unwrap();
    assert!(matches!(joiner.receive(&own), Err(JoinError::Protocol(_))));
}

#[test]
fn reflected_confirmation_reads_as_wrong_pin() {
    let node = Keypair::generate();
    let mut joiner = Joiner::new(PIN, request(&node));
    let mut member = Member::new(PIN);
    let (_, own_confirm) = exchange_pake(&mut joiner, &mut member);
    assert_eq!(
        joiner.receive(&own_confirm).unwrap_err(),
        JoinError::WrongPin
    );
}

#[test]
fn a_refusal_ends_the_exchange_with_its_reason() {
    let (mut joiner, mut member, log) = handshake(PIN, PIN);
    member.receive(&log[4]).unwrap();
    let refused = member.refuse("not today").unwrap();
    assert_eq!(
        joiner.receive(&refused).unwrap_err(),
        JoinError::Refused("not today".into())
    );
}

#[test]
fn a_forged_request_is_refused_by_the_member() {
    let node = Keypair::generate();
    let mut forged = request(&node);
    forged.roles.push(Role::AppHost); // signature no longer matches
    let mut joiner = Joiner::new(PIN, forged);
    let mut member = Member::new(PIN);
    let (m_confirm, j_confirm) = exchange_pake(&mut joiner, &mut member);
    member.receive(&j_confirm).unwrap();
    let sealed_request = joiner.receive(&m_confirm).unwrap().send.remove(0);
    assert!(matches!(
        member.receive(&sealed_request),
        Err(JoinError::Invalid(_))
    ));
}

#[test]
fn random_bytes_in_any_state_are_refused_without_panicking() {
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..500 {
        let len = rng.usize(0..200);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        // Well-formed kinds with garbage bodies reach deeper.
        if let Some(first) = bytes.first_mut() {
            *first = 1 + (round % 3) as u8;
        }
        let (mut joiner, mut member, _) = handshake(PIN, PIN);
        assert!(joiner.receive(&bytes).is_err());
        assert!(member.receive(&bytes).is_err());
        let mut fresh = Member::new(PIN);
        fresh.start(OsRng).unwrap();
        let _ = fresh.receive(&bytes);
    }
    for text in [
        &b"{}"[..],
        b"[]",
        b"null",
        b"{\"type\":\"answer\"}",
        b"\xff\xfe",
    ] {
        assert!(Message::from_json(text).is_err());
    }
}
