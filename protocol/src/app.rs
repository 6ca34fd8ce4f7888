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
