//! Talking to this node's own daemon: commands that need the running node (its links, its
//! chain engine) send CellAdmin requests to it, authenticated with the node's key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use exocore_protocol::admin::{AdminRequest, AdminResponse};
use exocore_protocol::client::Client;
use exocore_protocol::envelope::Service;
use exocore_protocol::error::Error as ProtocolError;
use exocore_protocol::message::ErrorCode;
use exocore_protocol::wire;

use crate::config::{Cell, Node};

/// Where the local daemon answers: its listen address, with a wildcard IP made loopback.
pub fn address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Sends one CellAdmin request for `cell` to the local daemon and returns its answer.
pub async fn admin(
    node: &Node,
    cell: &Cell,
    request: &AdminRequest,
) -> Result<AdminResponse, ProtocolError> {
    let local = address(node.config.listen);
    let mut client =
        Client::connect(local, &node.keypair, cell.config.id, &[node.config.id]).await?;
    let answer = client
        .request(Service::CellAdmin, wire::encode(request)?)
        .await;
    let _ = client.close("done").await;
    Ok(wire::decode::<AdminResponse>(&answer?)?)
}

/// Sends one request of `service` for `cell` to the local daemon, authenticated with the
/// node's key, and returns the answer's payload. Errors say how to start a missing daemon
/// and show a refusal by its message only.
pub fn request(
    node: &Node,
    cell: &Cell,
    service: Service,
    payload: Vec<u8>,
) -> Result<Vec<u8>, super::CliError> {
    let local = address(node.config.listen);
    let answer = smol::block_on(async {
        let mut client =
            Client::connect(local, &node.keypair, cell.config.id, &[node.config.id]).await?;
        let answer = client.request(service, payload).await;
        let _ = client.close("done").await;
        answer
    });
    answer.map_err(|err| failure(local, err))
}

/// A failure to talk to the local daemon at `local`, for the user: how to start a missing
/// daemon, a refusal by its message only (a conflict is its own error: exit code 3).
pub fn failure(local: SocketAddr, err: ProtocolError) -> super::CliError {
    if let ProtocolError::Remote(body) = &err {
        if body.code == ErrorCode::CONFLICT {
            return super::CliError::Conflict(body.message.clone());
        }
    }
    super::CliError::Failed(match err {
        ProtocolError::Connect(err) => {
            format!("no daemon answers on {local} ({err}): start it with `exo daemon`")
        }
        ProtocolError::Remote(body) if !body.message.is_empty() => body.message,
        err => err.to_string(),
    })
}
