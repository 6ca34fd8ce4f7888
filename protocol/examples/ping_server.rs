//! A minimal responder built on this crate alone: accepts connections for one cell, one at a
//! time, answers pings, refuses other services. Used by the Python interop test
//! (`tests/interop/`) and as a worked example of the responder API.
//!
//! ```text
//! ping_server ADDR SERVER_SK CELL_PK MEMBER_PK... [--once]
//! ```
//!
//! Prints `listening on HOST:PORT` once bound (ADDR may use port 0), then one line per
//! connection.

use std::process::ExitCode;

use exocore_protocol::envelope::{error_envelope, Kind, Service};
use exocore_protocol::error::{Error, WireError};
use exocore_protocol::identity::{Keypair, PublicKey};
use exocore_protocol::message::{ErrorCode, Ping, Pong};
use exocore_protocol::session;
use exocore_protocol::wire;

fn usage() -> ExitCode {
    eprintln!("usage: ping_server ADDR SERVER_SK CELL_PK MEMBER_PK... [--once]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    args.retain(|a| a != "--once");
    if args.len() < 4 {
        return usage();
    }
    let parsed = (|| -> Result<_, Error> {
        let keypair = Keypair::from_secret_text(&args[1])?;
        let cell: PublicKey = args[2].parse()?;
        let members = args[3..]
            .iter()
            .map(|text| text.parse::<PublicKey>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok((keypair, cell, members))
    })();
    let (keypair, cell, members) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("ping_server: {e}");
            return usage();
        }
    };
    smol::block_on(async {
        let listener = match async_net::TcpListener::bind(args[0].as_str()).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("ping_server: cannot listen on {}: {e}", args[0]);
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => println!("listening on {addr}"),
            Err(e) => {
                eprintln!("ping_server: {e}");
                return ExitCode::FAILURE;
            }
        }
        println!("node {}", keypair.public());
        loop {
            let (stream, from) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("ping_server: accept failed: {e}");
                    continue;
                }
            };
            let members_of = |asked: &PublicKey| (*asked == cell).then(|| members.clone());
            match session::respond(stream, &keypair, members_of).await {
                Ok(session) => {
                    println!("{from}: connected as {}", session.peer().remote);
                    match serve(session).await {
                        Ok(reason) => println!("{from}: closed: {reason}"),
                        Err(e) => println!("{from}: dropped: {e}"),
                    }
                }
                Err(e) => println!("{from}: refused: {e}"),
            }
            if once {
                return ExitCode::SUCCESS;
            }
        }
    })
}

/// Answers envelopes until the peer closes; returns the close reason.
async fn serve(mut session: session::Session<async_net::TcpStream>) -> Result<String, Error> {
    loop {
        let envelope = match session.receive_envelope().await {
            Ok(envelope) => envelope,
            Err(Error::Wire(WireError::UnknownService {
                service,
                kind: 0,
                request_id,
            })) => {
                let message = format!("service {service} does not exist");
                let reply = error_envelope(
                    Service::Ping,
                    request_id,
                    ErrorCode::UNKNOWN_SERVICE,
                    &message,
                )?;
                session.send_envelope(&reply).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let reply = match (envelope.kind, envelope.service) {
            (Kind::Request, Service::Ping) => match wire::decode::<Ping>(&envelope.payload) {
                Ok(ping) => envelope.response(wire::encode(&Pong { nonce: ping.nonce })?),
                Err(e) => envelope.error(ErrorCode::BAD_MESSAGE, &e.to_string())?,
            },
            (Kind::Request, _) | (Kind::Subscribe, _) => {
                envelope.error(ErrorCode::UNKNOWN_SERVICE, "this server only answers pings")?
            }
            (Kind::Close, _) => {
                let reason =
                    wire::decode::<exocore_protocol::message::CloseBody>(&envelope.payload)
                        .map(|body| body.reason)
                        .unwrap_or_else(|_| "no reason given".into());
                let _ = session.close("bye").await;
                return Ok(reason);
            }
            _ => continue,
        };
        session.send_envelope(&reply).await?;
    }
}
