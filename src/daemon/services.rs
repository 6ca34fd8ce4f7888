//! The node's services as the network sees them: requests and one-way messages routed by
//! (cell, service) to the chain and store services of the node's cells.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use exocore_protocol::admin::{AdminRequest, AdminResponse};
use exocore_protocol::envelope::Service;
use exocore_protocol::identity::PublicKey;
use exocore_protocol::message::{ErrorBody, ErrorCode};
use exocore_protocol::wire;
use tracing::warn;

use super::chain::ChainService;
use super::members::ChangeError;
use super::store::StoreService;
use crate::chain::SignedMembership;
use crate::engine::ChainMessage;
use crate::net::{AnswerFuture, EventSink, Incoming, Services};

/// Routes to the services of every cell; filled once they started (the network must exist
/// before them, since they send through it).
#[derive(Default)]
pub struct NodeServices {
    chains: OnceLock<HashMap<PublicKey, Arc<ChainService>>>,
    stores: OnceLock<HashMap<PublicKey, Arc<StoreService>>>,
}

impl NodeServices {
    /// Installs the chain services, by cell.
    pub fn set_chains(&self, chains: HashMap<PublicKey, Arc<ChainService>>) {
        let _ = self.chains.set(chains);
    }

    /// Installs the store services, by cell.
    pub fn set_stores(&self, stores: HashMap<PublicKey, Arc<StoreService>>) {
        let _ = self.stores.set(stores);
    }

    fn store(&self, cell: &PublicKey) -> Option<Arc<StoreService>> {
        self.stores.get()?.get(cell).cloned()
    }

    fn chain(&self, cell: &PublicKey) -> Option<Arc<ChainService>> {
        self.chains.get()?.get(cell).cloned()
    }
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Result<Vec<u8>, ErrorBody> {
    Err(ErrorBody {
        code,
        message: message.into(),
    })
}

impl Services for NodeServices {
    fn handle(&self, request: Incoming) -> AnswerFuture {
        let chain = self.chain(&request.cell);
        let store = self.store(&request.cell);
        Box::pin(async move {
            if request.service == Service::Store {
                let Some(store) = store else {
                    return refuse(
                        ErrorCode::UNKNOWN_SERVICE,
                        "this node does not serve the store of this cell (it needs the store \
                         and chain roles and the cell's secret)",
                    );
                };
                return store.handle(&request.payload).await;
            }
            match (
                request.service,
                wire::decode::<AdminRequest>(&request.payload),
            ) {
                (Service::CellAdmin, Ok(AdminRequest::AppendEntry { payload })) => {
                    let Some(chain) = chain else {
                        return refuse(
                            ErrorCode::UNKNOWN_SERVICE,
                            "this node has no chain role in this cell",
                        );
                    };
                    match chain.append(payload).await {
                        Ok(id) => wire::encode(&AdminResponse::Appended {
                            operation: id.to_bytes(),
                        })
                        .map_err(|e| ErrorBody {
                            code: ErrorCode::INTERNAL,
                            message: e.to_string(),
                        }),
                        Err(reason) if reason.contains("secret") => {
                            refuse(ErrorCode::NOT_AUTHORIZED, reason)
                        }
                        Err(reason) => refuse(ErrorCode::INTERNAL, reason),
                    }
                }
                (Service::CellAdmin, Ok(AdminRequest::ChangeMembership { document })) => {
                    let Some(chain) = chain else {
                        return refuse(
                            ErrorCode::UNKNOWN_SERVICE,
                            "this node has no chain role in this cell: send the change to a chain node",
                        );
                    };
                    let change = match SignedMembership::from_bytes(&document) {
                        Ok(change) => change,
                        Err(err) => return refuse(ErrorCode::BAD_MESSAGE, err.to_string()),
                    };
                    match chain.change_membership(change).await {
                        Ok((version, height)) => {
                            wire::encode(&AdminResponse::MembershipChanged { version, height })
                                .map_err(|e| ErrorBody {
                                    code: ErrorCode::INTERNAL,
                                    message: e.to_string(),
                                })
                        }
                        Err(ChangeError::NotCommitted(reason)) => {
                            refuse(ErrorCode::TIMEOUT, reason)
                        }
                        Err(ChangeError::Refused(reason)) => refuse(ErrorCode::BAD_MESSAGE, reason),
                    }
                }
                (Service::CellAdmin, _) => refuse(
                    ErrorCode::BAD_MESSAGE,
                    "not a CellAdmin request this node knows",
                ),
                (service, _) => refuse(
                    ErrorCode::UNKNOWN_SERVICE,
                    format!("{service:?} is not served by this node"),
                ),
            }
        })
    }

    fn subscribe(&self, request: Incoming, sink: EventSink) -> AnswerFuture {
        let store = self.store(&request.cell);
        Box::pin(async move {
            match (request.service, store) {
                (Service::Store, Some(store)) => store.subscribe(&request.payload, sink).await,
                (Service::Store, None) => refuse(
                    ErrorCode::UNKNOWN_SERVICE,
                    "this node does not serve the store of this cell (it needs the store and \
                     chain roles and the cell's secret)",
                ),
                (service, _) => refuse(
                    ErrorCode::UNSUPPORTED_KIND,
                    format!("{service:?} has no subscriptions"),
                ),
            }
        })
    }

    fn notify(&self, message: Incoming) {
        if message.service != Service::Chain {
            return;
        }
        let Some(chain) = self.chain(&message.cell) else {
            return;
        };
        match ChainMessage::from_bytes(&message.payload) {
            Ok(decoded) => chain.deliver(message.from, decoded),
            Err(err) => warn!(
                "undecodable chain message from {}: {err}",
                message.from.fingerprint()
            ),
        }
    }
}
