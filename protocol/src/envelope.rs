//! The envelope: what every application message is. One envelope is encoded with
//! [`crate::wire::CONFIG`] and carried as one (possibly chunked) message of a session.
//!
//! The cell is not in the envelope: it is fixed for the whole connection by the preamble.

use bincode::{Decode, Encode};

use crate::error::WireError;
use crate::message::{CloseBody, ErrorBody, ErrorCode};
use crate::wire;

/// Which part of the node a message is for. A u32 on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Service {
    /// Reachability and round-trip time; also the keepalive.
    Ping = 0,
    /// Chain replication between nodes.
    Chain = 1,
    /// Entity store: mutations and queries.
    Store = 2,
    /// App hosting.
    Apps = 3,
    /// Cell membership and roles.
    CellAdmin = 4,
}

impl Service {
    /// The service of a wire number, if this version defines it.
    pub fn from_u32(value: u32) -> Option<Service> {
        Some(match value {
            0 => Service::Ping,
            1 => Service::Chain,
            2 => Service::Store,
            3 => Service::Apps,
            4 => Service::CellAdmin,
            _ => return None,
        })
    }
}

/// What an envelope is in the conversation. A u32 on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Kind {
    /// A request; answered by exactly one Response or Error with the same request id.
    Request = 0,
    /// The answer to a request.
    Response = 1,
    /// The failure of a request or subscription; the payload is an [`ErrorBody`].
    Error = 2,
    /// Opens a subscription whose id is the request id.
    Subscribe = 3,
    /// A message of an open subscription.
    Event = 4,
    /// Ends a subscription (sent by the subscriber, or by the publisher when it ends it).
    Unsubscribe = 5,
    /// Orderly close; the payload is a [`CloseBody`], then the sender shuts down its writes.
    Close = 6,
}

/// An application message.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Envelope {
    /// Which service.
    pub service: Service,
    /// Which kind of message.
    pub kind: Kind,
    /// The request or subscription id, chosen by the requester (0 for Close).
    pub request_id: u64,
    /// The service-specific body, itself bincode-encoded.
    pub payload: Vec<u8>,
}

/// Bytes of an envelope before its payload bytes: service, kind, request id, payload length.
pub const ENVELOPE_HEADER_BYTES: usize = 4 + 4 + 8 + 8;

impl Envelope {
    /// A request.
    pub fn request(service: Service, request_id: u64, payload: Vec<u8>) -> Envelope {
        Envelope {
            service,
            kind: Kind::Request,
            request_id,
            payload,
        }
    }

    /// The response to this envelope (same service and id).
    pub fn response(&self, payload: Vec<u8>) -> Envelope {
        Envelope {
            service: self.service,
            kind: Kind::Response,
            request_id: self.request_id,
            payload,
        }
    }

    /// An error answering this envelope (same service and id).
    pub fn error(&self, code: ErrorCode, message: &str) -> Result<Envelope, WireError> {
        error_envelope(self.service, self.request_id, code, message)
    }

    /// An orderly close with a reason.
    pub fn close(reason: &str) -> Result<Envelope, WireError> {
        Ok(Envelope {
            service: Service::Ping,
            kind: Kind::Close,
            request_id: 0,
            payload: wire::encode(&CloseBody {
                reason: reason.to_owned(),
            })?,
        })
    }

    /// The wire bytes.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        wire::encode(self)
    }

    /// Parses wire bytes. An unknown service number gives [`WireError::UnknownService`] with
    /// the request id, so that a request for it can be answered with
    /// [`ErrorCode::UNKNOWN_SERVICE`] rather than by closing the connection.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
        match wire::decode::<Envelope>(bytes) {
            Ok(envelope) => Ok(envelope),
            Err(e) => Err(unknown_service(bytes).unwrap_or(e)),
        }
    }

    /// Decodes the payload as an [`ErrorBody`] (for envelopes of kind Error).
    pub fn error_body(&self) -> Result<ErrorBody, WireError> {
        wire::decode(&self.payload)
    }
}

/// An Error envelope for `service` and `request_id`.
pub fn error_envelope(
    service: Service,
    request_id: u64,
    code: ErrorCode,
    message: &str,
) -> Result<Envelope, WireError> {
    Ok(Envelope {
        service,
        kind: Kind::Error,
        request_id,
        payload: wire::encode(&ErrorBody {
            code,
            message: message.to_owned(),
        })?,
    })
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let mut out = [0u8; 4];
    out.copy_from_slice(bytes.get(at..at + 4)?);
    Some(u32::from_le_bytes(out))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let mut out = [0u8; 8];
    out.copy_from_slice(bytes.get(at..at + 8)?);
    Some(u64::from_le_bytes(out))
}

/// If the header names an unknown service (and is otherwise readable), that error.
fn unknown_service(bytes: &[u8]) -> Option<WireError> {
    let service = read_u32(bytes, 0)?;
    let kind = read_u32(bytes, 4)?;
    let request_id = read_u64(bytes, 8)?;
    if Service::from_u32(service).is_some() {
        return None;
    }
    Some(WireError::UnknownService {
        service,
        kind,
        request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Ping;

    #[test]
    fn envelope_has_its_documented_bytes() {
        let envelope = Envelope::request(
            Service::Store,
            0x0102,
            wire::encode(&Ping { nonce: 9 }).unwrap(),
        );
        let bytes = envelope.encode().unwrap();
        let expected: &[u8] = &[
            2, 0, 0, 0, // service Store
            0, 0, 0, 0, // kind Request
            0x02, 0x01, 0, 0, 0, 0, 0, 0, // request id
            8, 0, 0, 0, 0, 0, 0, 0, // payload length
            9, 0, 0, 0, 0, 0, 0, 0, // payload: Ping { nonce: 9 }
        ];
        assert_eq!(bytes, expected);
        assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
    }

    #[test]
    fn every_enum_value_is_its_index() {
        for (i, service) in [
            Service::Ping,
            Service::Chain,
            Service::Store,
            Service::Apps,
            Service::CellAdmin,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(wire::encode(&service).unwrap(), (i as u32).to_le_bytes());
            assert_eq!(Service::from_u32(i as u32), Some(service));
        }
        for (i, kind) in [
            Kind::Request,
            Kind::Response,
            Kind::Error,
            Kind::Subscribe,
            Kind::Event,
            Kind::Unsubscribe,
            Kind::Close,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(wire::encode(&kind).unwrap(), (i as u32).to_le_bytes());
        }
    }

    #[test]
    fn unknown_service_keeps_the_request_id() {
        let mut bytes = Envelope::request(Service::Ping, 77, vec![])
            .encode()
            .unwrap();
        bytes[0] = 42;
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(WireError::UnknownService {
                service: 42,
                kind: 0,
                request_id: 77
            })
        ));
    }

    #[test]
    fn unknown_kind_and_truncation_are_errors() {
        let mut bytes = Envelope::request(Service::Ping, 1, vec![1, 2])
            .encode()
            .unwrap();
        let good = bytes.clone();
        bytes[4] = 7;
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(WireError::Decode(_))
        ));
        for len in 0..good.len() {
            assert!(Envelope::decode(&good[..len]).is_err());
        }
    }
}
