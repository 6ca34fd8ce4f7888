//! The test vectors of `spec/join.md`, in `fixtures/join/`, checked byte for byte.
//! `UPDATE_VECTORS=1 cargo test --lib join::vectors` rewrites them (only ever on purpose: a
//! change is a change of the contract).

use exocore_protocol::identity::Keypair;
use rand_core::{CryptoRng, RngCore};

use super::message::hex;
use super::pake::{Pake, Side};
use super::*;
use crate::config::{CellConfig, CellNode, Role};
use crate::discovery::frame::{ClientFrame, ErrorCode, ServerFrame};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/join");

/// A "random" source that yields one byte over and over: SPAKE2 draws 64 bytes and reduces
/// them modulo the group order, so the scalar is fixed.
struct Fixed(u8);

impl RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes([self.0; 4])
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes([self.0; 8])
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(self.0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        dest.fill(self.0);
        Ok(())
    }
}

impl CryptoRng for Fixed {}

const PIN: Pin = Pin {
    slot: 42,
    secret: 817_305,
};

#[test]
fn fixed_inputs_match_the_fixtures() {
    let joiner_key = Keypair::from_seed(&[1; 32]);
    let cell_key = Keypair::from_seed(&[2; 32]);
    let member_key = Keypair::from_seed(&[3; 32]);
    let mut files: Vec<(&str, String)> = Vec::new();
    // `.hex` files hold bytes as one line of lowercase hex; `.json` files the document itself.
    let mut add = |name: &'static str, bytes: &[u8]| {
        let text = if name.ends_with(".json") {
            String::from_utf8_lossy(bytes).into_owned()
        } else {
            hex(bytes)
        };
        files.push((name, text))
    };

    add("pin_password.hex", &PIN.password());
    let (pake_j, msg_j) = Pake::start(Side::Joiner, &PIN, Fixed(0x11));
    let (pake_m, msg_m) = Pake::start(Side::Member, &PIN, Fixed(0x22));
    add("pake_joiner.hex", &msg_j);
    add("pake_member.hex", &msg_m);
    let (raw, _) = spake2::Spake2::<spake2::Ed25519Group>::start_a_with_rng(
        &spake2::Password::new(PIN.password()),
        &spake2::Identity::new(super::pake::JOINER_IDENTITY),
        &spake2::Identity::new(super::pake::MEMBER_IDENTITY),
        Fixed(0x11),
    );
    add("spake2_key.hex", &raw.finish(&msg_m).unwrap());
    let keys = pake_j.finish(&msg_m).unwrap();
    assert_eq!(keys, pake_m.finish(&msg_j).unwrap());
    add("joiner_confirmation.hex", &keys.joiner_confirmation);
    add("member_confirmation.hex", &keys.member_confirmation);
    add("key_joiner_to_member.hex", &keys.joiner_to_member);
    add("key_member_to_joiner.hex", &keys.member_to_joiner);

    // The exchange, message by message, as relayed.
    let request = Request::new(
        &joiner_key,
        "b".into(),
        vec!["127.0.0.1:3331".into()],
        vec![Role::Chain, Role::Store],
    );
    add("request_signed_bytes.hex", &request.signed_bytes());
    let mut joiner = Joiner::new(PIN, request.clone());
    let mut member = Member::new(PIN);
    let j_pake = joiner.start(Fixed(0x11)).unwrap();
    let m_pake = member.start(Fixed(0x22)).unwrap();
    add("relay1_joiner_pake.hex", &j_pake);
    add("relay2_member_pake.hex", &m_pake);
    let m_confirm = member.receive(&j_pake).unwrap().send.remove(0);
    let j_confirm = joiner.receive(&m_pake).unwrap().send.remove(0);
    add("relay3_member_confirm.hex", &m_confirm);
    add("relay4_joiner_confirm.hex", &j_confirm);
    member.receive(&j_confirm).unwrap();
    let sealed_request = joiner.receive(&m_confirm).unwrap().send.remove(0);
    add("relay5_joiner_request.hex", &sealed_request);
    add("request.json", &Message::Request(request.clone()).to_json());
    member.receive(&sealed_request).unwrap();
    let offer = member.offer(cell_key.public(), "home", "a").unwrap();
    add("relay6_member_offer.hex", &offer);
    joiner.receive(&offer).unwrap();
    let ready = joiner.ready().unwrap();
    add("relay7_joiner_ready.hex", &ready);
    member.receive(&ready).unwrap();
    let cell = CellConfig {
        id: cell_key.public(),
        name: "home".into(),
        version: 0,
        initial: None,
        nodes: vec![
            CellNode {
                id: member_key.public(),
                name: "a".into(),
                addresses: vec!["127.0.0.1:3330".into()],
                roles: Role::ALL.to_vec(),
            },
            CellNode {
                id: joiner_key.public(),
                name: "b".into(),
                addresses: vec!["127.0.0.1:3331".into()],
                roles: vec![Role::Chain, Role::Store],
            },
        ],
    };
    let answer = Answer::new(&cell_key, &joiner_key.public(), &cell, true, [0x33; 32]);
    add("answer_signed_bytes.hex", &answer.signed_bytes());
    add("answer.json", &Message::Answer(answer.clone()).to_json());
    let sealed_answer = member.answer(answer.clone()).unwrap();
    add("relay8_member_answer.hex", &sealed_answer);
    joiner.receive(&sealed_answer).unwrap();
    add("relay9_joiner_installed.hex", &joiner.installed().unwrap());

    // Rendezvous frames.
    add("frame_open.hex", &ClientFrame::Open.encode());
    add("frame_claim.hex", &ClientFrame::Claim(42).encode());
    add(
        "frame_relay.hex",
        &ClientFrame::Relay(j_pake.clone()).encode(),
    );
    add(
        "frame_opened.hex",
        &ServerFrame::Opened {
            slot: 42,
            ttl_secs: 600,
        }
        .encode(),
    );
    add("frame_claimed.hex", &ServerFrame::Claimed.encode());
    add("frame_peer_joined.hex", &ServerFrame::PeerJoined.encode());
    add("frame_peer_left.hex", &ServerFrame::PeerLeft.encode());
    add(
        "frame_error.hex",
        &ServerFrame::error(ErrorCode::NoSuchSlot, "no join is waiting under number 42").encode(),
    );

    if std::env::var_os("UPDATE_VECTORS").is_some() {
        for (name, text) in &files {
            std::fs::write(format!("{DIR}/{name}"), format!("{text}\n")).unwrap();
        }
    }
    for (name, text) in &files {
        let on_disk = std::fs::read_to_string(format!("{DIR}/{name}"))
            .unwrap_or_else(|e| panic!("fixtures/join/{name}: {e} (UPDATE_VECTORS=1 writes it)"));
        assert_eq!(on_disk.trim(), text, "fixtures/join/{name} differs");
    }

    // The fixtures' answer, read as a third party would, opens with the joiner's key.
    let text = std::fs::read(format!("{DIR}/answer.json")).unwrap();
    let Message::Answer(read) = Message::from_json(&text).unwrap() else {
        panic!("answer.json is not an answer");
    };
    let (opened, secret) = read.open(&joiner_key).unwrap();
    assert_eq!(opened, cell);
    assert_eq!(secret.unwrap().public(), cell_key.public());
}
