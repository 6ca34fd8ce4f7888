//! The messages between a WebAssembly app and its host (`spec/apps.md` section 3): requests
//! an app passes to the host's `send`, and the events the host writes into the app's memory
//! before calling its `on_message`. Encoded with [`crate::wire::CONFIG`], like the wire.
//!
//! ```
//! use exocore_protocol::app::{AppRequest, AppRequestBody};
//! use exocore_protocol::store::StoreRequest;
//! use exocore_protocol::wire;
//!
//! let request = AppRequest {
//!     id: 7,
//!     body: AppRequestBody::Store(StoreRequest::QueryText { text: "type:task".into() }),
//! };
//! let bytes = wire::encode(&request).unwrap();
//! assert_eq!(wire::decode::<AppRequest>(&bytes).unwrap(), request);
//! ```

use bincode::{Decode, Encode};

use crate::message::ErrorBody;
use crate::store::{StoreRequest, StoreResponse};

/// A request from an app, through the host function `send`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AppRequest {
    /// Chosen by the app, unique among its unanswered requests and live watches; the answer
    /// carries it.
    pub id: u32,
    /// What the app asks.
    pub body: AppRequestBody,
}

/// What an app asks of the host.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum AppRequestBody {
    /// A store request (`spec/protocol.md` section 9.2), within the app's permissions;
    /// `Watch` is allowed here.
    Store(StoreRequest),
    /// End the watch whose request id is `watch`; answered with [`AppEvent::Done`].
    Unwatch {
        /// The id of the `Watch` request.
        watch: u32,
    },
}

/// What the host delivers to an app, through its `alloc` and `on_message`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum AppEvent {
    /// The answer to request `id`.
    Reply {
        /// The request's id.
        id: u32,
        /// The store's answer.
        response: StoreResponse,
    },
    /// Request `id` was refused or failed; for a watch, the watch has ended.
    Failed {
        /// The request's id.
        id: u32,
        /// Why (codes of `spec/protocol.md` section 9).
        error: ErrorBody,
    },
    /// New results of the watch `id` (a [`StoreResponse::Results`]).
    Watched {
        /// The `Watch` request's id.
        id: u32,
        /// The results.
        response: StoreResponse,
    },
    /// Request `id` (an `Unwatch`) succeeded and has nothing to return.
    Done {
        /// The request's id.
        id: u32,
    },
}

/// A request to a node's Apps service (service 3, `spec/apps.md` section 11): managing the
/// apps of a cell.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum AppsRequest {
    /// Install (or upgrade) the app of a package file; the node verifies it and writes it to
    /// the cell's chain, so every app host node of the cell runs it.
    Install {
        /// The package file's bytes.
        package: Vec<u8>,
    },
    /// Remove an app from the cell.
    Remove {
        /// Its name.
        name: String,
    },
    /// The cell's apps and how they run on this node.
    List,
}

/// An answer of the Apps service.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum AppsResponse {
    /// The change is durable in the chain (operation id, 16 bytes).
    Changed {
        /// The operation carrying it.
        operation: [u8; 16],
    },
    /// The apps installed in the cell.
    List {
        /// By name.
        apps: Vec<AppInfo>,
    },
}

/// One installed app, as this node runs it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AppInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its public key.
    pub key: [u8; 32],
    /// `starting`, `running`, `stopped`, or `not hosted` (this node is no app host).
    pub state: String,
    /// Instances started on this node.
    pub starts: u32,
    /// Faults on this node.
    pub faults: u32,
    /// The last fault's reason.
    pub last_fault: Option<String>,
}

/// The statuses the host function `send` returns (`spec/apps.md` section 2.1).
pub mod send_status {
    /// Queued: exactly one answer will follow.
    pub const ACCEPTED: i32 = 0;
    /// The bytes are not an `AppRequest`.
    pub const MALFORMED: i32 = 1;
    /// Too many requests and watches unanswered.
    pub const BUSY: i32 = 2;
    /// Over the request size limit.
    pub const TOO_LARGE: i32 = 3;
    /// A request or watch with this id is unanswered.
    pub const DUPLICATE: i32 = 4;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn layout_matches_spec() {
        let request = AppRequest {
            id: 7,
            body: AppRequestBody::Store(StoreRequest::QueryText {
                text: "type:task".into(),
            }),
        };
        let hex: String = wire::encode(&request)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            concat!(
                "07000000",
                "00000000",
                "02000000",
                "0900000000000000",
                "747970653a7461736b"
            )
        );
        let done = wire::encode(&AppEvent::Done { id: 1 }).unwrap();
        assert_eq!(done, [3, 0, 0, 0, 1, 0, 0, 0]);
    }
}
