//! The node's services as the network sees them: requests and one-way messages routed by
//! (cell, service) to the chain, store and apps services of the node's cells.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use exocore_protocol::admin::{AdminRequest, AdminResponse};
use exocore_protocol::envelope::Service;
use exocore_protocol::identity::PublicKey;
use exocore_protocol::message::{ErrorBody, ErrorCode};
use exocore_protocol::wire;
use tracing::warn;

use std::time::Instant;

use super::apps::AppsService;
use super::chain::ChainService;
use super::members::ChangeError;
use super::status;
use super::store::StoreService;
use crate::chain::SignedMembership;
use crate::config::Role;
use crate::engine::ChainMessage;
use crate::net::{AnswerFuture, EventSink, Incoming, Network, Services};

/// Routes to the services of every cell; filled once they started (the network must exist
/// before them, since they send through it).
pub struct NodeServices {
    chains: RwLock<HashMap<PublicKey, Arc<ChainService>>>,
    stores: RwLock<HashMap<PublicKey, Arc<StoreService>>>,
    apps: RwLock<HashMap<PublicKey, Arc<AppsService>>>,
    network: OnceLock<Network>,
    /// This node's roles, by cell.
    roles: RwLock<HashMap<PublicKey, Vec<Role>>>,
    started: Instant,
}

impl NodeServices {
    /// Routes, empty until [`NodeServices::install`].
    pub fn new() -> NodeServices {
        NodeServices {
            chains: RwLock::default(),
            stores: RwLock::default(),
            apps: RwLock::default(),
            network: OnceLock::new(),
            roles: RwLock::default(),
            started: Instant::now(),
        }
    }

    /// Installs the network, for the links `exo status` reports.
    pub fn set_network(&self, network: Network) {
        let _ = self.network.set(network);
    }

    /// Routes `cell`'s requests to these services (replacing earlier ones); `None` removes.
    pub fn install(
        &self,
        cell: PublicKey,
        roles: Vec<Role>,
        chain: Option<Arc<ChainService>>,
        store: Option<Arc<StoreService>>,
    ) {
        let mut all_roles = self.roles.write().unwrap_or_else(|p| p.into_inner());
        all_roles.insert(cell, roles);
        let mut chains = self.chains.write().unwrap_or_else(|p| p.into_inner());
        match chain {
            Some(chain) => chains.insert(cell, chain),
            None => chains.remove(&cell),
        };
        let mut stores = self.stores.write().unwrap_or_else(|p| p.into_inner());
        match store {
            Some(store) => stores.insert(cell, store),
            None => stores.remove(&cell),
        };
    }

    /// Routes `cell`'s Apps requests to `apps`; `None` removes.
    pub fn install_apps(&self, cell: PublicKey, apps: Option<Arc<AppsService>>) {
        let mut all = self.apps.write().unwrap_or_else(|p| p.into_inner());
        match apps {
            Some(apps) => all.insert(cell, apps),
            None => all.remove(&cell),
        };
    }

    fn store(&self, cell: &PublicKey) -> Option<Arc<StoreService>> {
        let stores = self.stores.read().unwrap_or_else(|p| p.into_inner());
        stores.get(cell).cloned()
    }

    fn chain(&self, cell: &PublicKey) -> Option<Arc<ChainService>> {
        let chains = self.chains.read().unwrap_or_else(|p| p.into_inner());
        chains.get(cell).cloned()
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
        let apps = {
            let all = self.apps.read().unwrap_or_else(|p| p.into_inner());
            all.get(&request.cell).cloned()
        };
        let roles = self
            .roles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&request.cell)
            .cloned()
            .unwrap_or_default();
        let network = self.network.get().cloned();
        let started = self.started;
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
            if request.service == Service::Apps {
                let Some(apps) = apps else {
                    return refuse(
                        ErrorCode::UNKNOWN_SERVICE,
                        "this node does not serve the apps of this cell (it needs the chain \
                         role and the cell's secret)",
                    );
                };
                return apps.handle(request.from, &request.payload).await;
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
                (Service::CellAdmin, Ok(AdminRequest::Status)) => {
                    let status = status::gather(status::Sources {
                        cell: request.cell,
                        roles: &roles,
                        started,
                        network: network.as_ref(),
                        chain: chain.as_deref(),
                        store: store.as_deref(),
                        apps: apps.as_deref(),
                    })
                    .await;
                    wire::encode(&AdminResponse::Status(status)).map_err(|e| ErrorBody {
                        code: ErrorCode::INTERNAL,
                        message: e.to_string(),
                    })
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
