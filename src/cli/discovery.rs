//! `exo discovery daemon`: the rendezvous server through which a joining node and a member
//! find each other by PIN (`spec/join.md` section 2).

use std::net::SocketAddr;

use argh::FromArgs;
use futures_lite::StreamExt;

use super::CliError;
use crate::config::DEFAULT_DISCOVERY_PORT;
use crate::discovery::registry::Limits;

/// The rendezvous server for joining nodes by PIN.
#[derive(FromArgs)]
#[argh(subcommand, name = "discovery")]
pub struct DiscoveryCmd {
    #[argh(subcommand)]
    command: DiscoverySub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum DiscoverySub {
    Daemon(DaemonCmd),
}

/// Run the rendezvous server in the foreground (Ctrl-C or SIGTERM stops it). It relays
/// encrypted messages between a joining node and a member; it never sees a PIN's secret.
#[derive(FromArgs)]
#[argh(subcommand, name = "daemon")]
struct DaemonCmd {
    /// address to listen on (default: 0.0.0.0:3340)
    #[argh(option)]
    listen: Option<SocketAddr>,
    /// how long a PIN stays valid, in seconds (default: 600)
    #[argh(option)]
    ttl_secs: Option<u64>,
    /// joins in progress at once on the server (default: 1000)
    #[argh(option)]
    max_slots: Option<usize>,
    /// joins in progress at once from one IP address (default: 8)
    #[argh(option)]
    max_slots_per_ip: Option<usize>,
    /// PIN attempts per minute from one IP address (default: 20)
    #[argh(option)]
    max_claims_per_minute: Option<usize>,
}

impl DiscoveryCmd {
    pub fn run(self) -> Result<(), CliError> {
        let DiscoverySub::Daemon(cmd) = self.command;
        cmd.run()
    }
}

impl DaemonCmd {
    fn run(self) -> Result<(), CliError> {
        let defaults = Limits::default();
        let positive = |value: Option<u64>, name: &str, default: u64| match value {
            Some(0) => Err(CliError::BadArgument(format!(
                "--{name} must be at least 1"
            ))),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let limits = Limits {
            ttl_ms: positive(self.ttl_secs, "ttl-secs", defaults.ttl_ms / 1000)?
                .saturating_mul(1000),
            slots_max: positive(
                self.max_slots.map(|v| v as u64),
                "max-slots",
                defaults.slots_max as u64,
            )? as usize,
            slots_per_ip_max: positive(
                self.max_slots_per_ip.map(|v| v as u64),
                "max-slots-per-ip",
                defaults.slots_per_ip_max as u64,
            )? as usize,
            claims_per_ip_per_minute: positive(
                self.max_claims_per_minute.map(|v| v as u64),
                "max-claims-per-minute",
                defaults.claims_per_ip_per_minute as u64,
            )? as usize,
            ..defaults
        };
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_DISCOVERY_PORT)));
        smol::block_on(async {
            let listener = async_net::TcpListener::bind(listen)
                .await
                .map_err(|e| CliError::Failed(format!("cannot listen on {listen}: {e}")))?;
            let local = listener.local_addr().unwrap_or(listen);
            use async_signal::{Signal, Signals};
            let mut signals = Signals::new([Signal::Int, Signal::Term])
                .map_err(|e| CliError::Failed(format!("cannot install signal handlers: {e}")))?;
            tracing::info!(
                "discovery server listening on {local} (PINs valid {} s, at most {} joins at once, {} per address, {} PIN attempts a minute per address)",
                limits.ttl_ms / 1000,
                limits.slots_max,
                limits.slots_per_ip_max,
                limits.claims_per_ip_per_minute
            );
            let serving = async {
                crate::discovery::server::serve(listener, limits).await;
                Ok(())
            };
            let stopping = async {
                if let Some(Ok(signal)) = signals.next().await {
                    tracing::info!("received {signal:?}, stopping");
                }
                Ok(())
            };
            futures_lite::future::or(serving, stopping).await
        })
    }
}
