//! The apps of one cell on this node: installs and removals are chain operations (payload
//! kind 2), written through the chain service and folded here in operation order; on an app
//! host node (app-host and store roles) the installed apps run in an [`AppHost`] over the
//! cell's store service. Answers the Apps service (`spec/apps.md` section 11).
//!
//! Where the cell's store runs on this node, the trait types of the installed apps are
//! registered in its index: when the folded apps bring other types than the index opened
//! with, they are recorded ([`super::app_schemas`]) and [`AppsService::schemas_changed`]
//! tells the supervisor to restart the cell's services, so the index reopens with them.
//!
//! Architecture invariant: glue only: verification and the fold are `crate::apps`'s,
//! durability and replication the chain's, data access the store service's.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use exocore_protocol::app::{AppInfo, AppsRequest, AppsResponse};
use exocore_protocol::identity::PublicKey;
use exocore_protocol::message::{ErrorBody, ErrorCode};
use exocore_protocol::store::{StoreRequest, StoreResponse};
use exocore_protocol::wire;
use tracing::{error, info, warn};

use super::app_schemas;
use super::chain::{AppPlain, ChainService};
use super::store::StoreService;
use crate::apps::change::{AppChange, Applied, InstalledApps};
use crate::apps::store::{StoreFuture, WatchReceiver};
use crate::apps::{AppHost, AppState, AppStore, Limits, Package};
use crate::net::Answer;
use crate::store::{Query, Schemas};

/// App change batches waiting for the app thread; beyond it, the chain service waits.
const CHANGES_LEN: usize = 16;

/// The cell's store service, as apps reach it.
struct ServiceStore(Arc<StoreService>);

impl AppStore for ServiceStore {
    fn request(&self, request: StoreRequest) -> StoreFuture<StoreResponse> {
        let store = self.0.clone();
        Box::pin(async move {
            let payload = wire::encode(&request).map_err(|e| internal(e.to_string()))?;
            let answer = store.handle(&payload).await?;
            wire::decode::<StoreResponse>(&answer).map_err(|e| internal(e.to_string()))
        })
    }

    fn watch(&self, query: Query) -> StoreFuture<WatchReceiver> {
        let store = self.0.clone();
        Box::pin(async move { store.watch(query).await })
    }
}

fn internal(message: String) -> ErrorBody {
    ErrorBody {
        code: ErrorCode::INTERNAL,
        message,
    }
}

fn bad(message: String) -> ErrorBody {
    ErrorBody {
        code: ErrorCode::BAD_MESSAGE,
        message,
    }
}

/// The schemas the cell's entity index on this node runs with.
pub struct IndexedSchemas {
    /// The cell's folder, where a change is recorded.
    pub cell_dir: PathBuf,
    /// The built-in types and those of the apps installed when the index opened.
    pub schemas: Schemas,
}

/// The apps of a cell on this node.
pub struct AppsService {
    cell_name: String,
    /// This node: only it may install and remove apps (its own CLI).
    node: PublicKey,
    chain: Arc<ChainService>,
    installed: Arc<Mutex<InstalledApps>>,
    host: Option<Arc<AppHost>>,
    changes: async_channel::Sender<Vec<AppPlain>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The installed apps' types differ from the index's (and are recorded for its restart).
    schemas_changed: Arc<AtomicBool>,
}

impl AppsService {
    /// Starts following the cell's app changes; runs the apps when `store` is given (the
    /// node is an app host with a store); watches the installed apps' types against
    /// `indexed` when the cell's store runs on this node.
    pub fn start(
        cell_name: &str,
        node: PublicKey,
        chain: Arc<ChainService>,
        store: Option<Arc<StoreService>>,
        indexed: Option<IndexedSchemas>,
    ) -> Result<AppsService, String> {
        let host = match store {
            Some(store) => Some(Arc::new(
                AppHost::start(Limits::default(), Arc::new(ServiceStore(store)))
                    .map_err(|e| format!("cell `{cell_name}`: {e}"))?,
            )),
            None => None,
        };
        let installed = Arc::new(Mutex::new(InstalledApps::default()));
        let (changes, receiver) = async_channel::bounded(CHANGES_LEN);
        let schemas_changed = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("apps-{cell_name}"))
            .spawn({
                let follower = Follower {
                    cell: cell_name.to_string(),
                    installed: installed.clone(),
                    host: host.clone(),
                    indexed,
                    schemas_changed: schemas_changed.clone(),
                };
                move || follower.follow(&receiver)
            })
            .map_err(|e| format!("cannot start the apps thread: {e}"))?;
        chain.watch_apps(changes.clone());
        Ok(AppsService {
            cell_name: cell_name.to_string(),
            node,
            chain,
            installed,
            host,
            changes,
            thread: Mutex::new(Some(thread)),
            schemas_changed,
        })
    }

    /// Whether the installed apps now bring other trait types than the cell's index runs
    /// with: the cell's services are to be restarted so the index takes them.
    pub fn schemas_changed(&self) -> bool {
        self.schemas_changed.load(Ordering::Acquire)
    }

    /// Answers one Apps request (its payload) from member `from`.
    pub async fn handle(&self, from: PublicKey, payload: &[u8]) -> Answer {
        let request = wire::decode::<AppsRequest>(payload)
            .map_err(|e| bad(format!("not an Apps request: {e}")))?;
        if from != self.node && !matches!(request, AppsRequest::List) {
            return Err(ErrorBody {
                code: ErrorCode::NOT_AUTHORIZED,
                message: "only the node itself may install or remove apps (`exo cell app` on \
                          that node)"
                    .into(),
            });
        }
        let response = match request {
            AppsRequest::Install { package } => {
                let read = Package::from_bytes(&package).map_err(|e| bad(e.to_string()))?;
                let known = self.lock().schemas(&read.manifest.name);
                read.verify(&known).map_err(|e| bad(e.to_string()))?;
                self.write(AppChange::Install { package }).await?
            }
            AppsRequest::Remove { name } => {
                if self.lock().get(&name).is_none() {
                    return Err(bad(format!(
                        "no app `{name}` is installed in cell `{}`",
                        self.cell_name
                    )));
                }
                self.write(AppChange::Remove { name }).await?
            }
            AppsRequest::List => AppsResponse::List { apps: self.list() },
        };
        wire::encode(&response).map_err(|e| internal(e.to_string()))
    }

    async fn write(&self, change: AppChange) -> Result<AppsResponse, ErrorBody> {
        let operation = self
            .chain
            .append_app(change.to_bytes())
            .await
            .map_err(|e| ErrorBody {
                code: if e.contains("secret") {
                    ErrorCode::NOT_AUTHORIZED
                } else {
                    ErrorCode::INTERNAL
                },
                message: e,
            })?;
        Ok(AppsResponse::Changed {
            operation: operation.to_bytes(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, InstalledApps> {
        lock(&self.installed)
    }

    fn list(&self) -> Vec<AppInfo> {
        let installed = self.lock();
        installed
            .iter()
            .map(|app| {
                let status = self
                    .host
                    .as_ref()
                    .and_then(|h| h.status(&app.manifest.name));
                let state = match status.as_ref().map(|s| &s.state) {
                    None if self.host.is_none() => "not hosted".to_string(),
                    None | Some(AppState::Starting) => "starting".to_string(),
                    Some(AppState::Running) => "running".to_string(),
                    Some(AppState::Stopped { .. }) => "stopped".to_string(),
                };
                AppInfo {
                    name: app.manifest.name.clone(),
                    version: app.manifest.version.clone(),
                    key: app.manifest.key,
                    state,
                    starts: status.as_ref().map_or(0, |s| s.starts),
                    faults: status.as_ref().map_or(0, |s| s.faults),
                    last_fault: status.and_then(|s| s.last_fault),
                }
            })
            .collect()
    }

    /// The apps as `exo status` shows them: name, and state (with the fault when stopped).
    pub fn statuses(&self) -> Vec<exocore_protocol::admin::AppStatus> {
        self.list()
            .into_iter()
            .map(|app| exocore_protocol::admin::AppStatus {
                state: match app.last_fault {
                    Some(fault) if app.state == "stopped" => format!("stopped: {fault}"),
                    _ => app.state,
                },
                name: app.name,
            })
            .collect()
    }

    /// Stops the apps and the thread following the changes.
    pub fn stop(&self) {
        self.changes.close();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        if let Some(host) = &self.host {
            host.stop();
        }
    }
}

/// The installed apps; a panic while they were held left them consistent (each change is
/// applied whole), so a poisoned lock is used as is.
fn lock(installed: &Mutex<InstalledApps>) -> MutexGuard<'_, InstalledApps> {
    installed.lock().unwrap_or_else(|p| p.into_inner())
}

/// The apps thread's state.
struct Follower {
    cell: String,
    installed: Arc<Mutex<InstalledApps>>,
    host: Option<Arc<AppHost>>,
    indexed: Option<IndexedSchemas>,
    schemas_changed: Arc<AtomicBool>,
}

impl Follower {
    fn lock(&self) -> MutexGuard<'_, InstalledApps> {
        lock(&self.installed)
    }

    /// Folds the app changes the chain sends, starts or stops the apps they name, and
    /// notices when the installed apps' types leave the index's.
    fn follow(&self, changes: &async_channel::Receiver<Vec<AppPlain>>) {
        while let Ok(batch) = changes.recv_blocking() {
            self.apply(batch);
            self.compare_schemas();
        }
    }

    fn apply(&self, mut batch: Vec<AppPlain>) {
        let (cell, host) = (&self.cell, self.host.as_deref());
        batch.sort_by_key(|(id, _)| *id);
        for (id, plaintext) in batch {
            let applied = AppChange::from_bytes(&plaintext)
                .map_err(|e| e.to_string())
                .and_then(|change| self.lock().apply(id, &change).map_err(|e| e.to_string()));
            match applied {
                Ok(Applied::Installed(app)) => {
                    info!(
                        "cell `{cell}`: app {} {} installed (operation {id})",
                        app.manifest.name, app.manifest.version
                    );
                    if let Some(host) = host {
                        if let Err(e) = host.install(*app) {
                            error!("cell `{cell}`: the app cannot run: {e}");
                        }
                    }
                }
                Ok(Applied::Removed(name)) => {
                    info!("cell `{cell}`: app {name} removed (operation {id})");
                    if let Some(host) = host {
                        let _ = host.remove(&name);
                    }
                }
                Ok(Applied::Superseded) => {}
                Err(e) => warn!("cell `{cell}`: app change {id} is ignored: {e}"),
            }
        }
    }

    /// Records the installed apps' schema files and raises the flag when their types are no
    /// longer the index's. Once raised, the restart is coming: nothing more to compare.
    fn compare_schemas(&self) {
        let Some(indexed) = &self.indexed else { return };
        if self.schemas_changed.load(Ordering::Acquire) {
            return;
        }
        let (now, files) = {
            let installed = self.lock();
            // App names are never empty: every installed app counts.
            (installed.schemas(""), installed.schema_files())
        };
        if now == indexed.schemas {
            return;
        }
        let cell = &self.cell;
        match app_schemas::save(&indexed.cell_dir, &files) {
            Ok(()) => {
                info!(
                    "cell `{cell}`: the installed apps bring other trait types: the cell's \
                     services restart so its entity index takes them"
                );
                self.schemas_changed.store(true, Ordering::Release);
            }
            Err(e) => error!(
                "cell `{cell}`: the installed apps bring other trait types, but {e}: the \
                 entity index keeps the previous ones"
            ),
        }
    }
}
