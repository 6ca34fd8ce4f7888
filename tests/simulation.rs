//! Deterministic simulation of the replication engine: 1 to 5 chain nodes running the real
//! engine on the real LMDB chain store (temporary folders), over a simulated network with
//! random delay, loss, duplication and reordering, partitions that form and heal, crashes
//! with restart from disk (in-flight messages lost; sometimes before the writes of a step,
//! sometimes after them but before its messages), and a skewed clock per node. A step's
//! writes, its consensus vote included, are one LMDB transaction (`engine::apply`), so
//! those are the only two places a crash can fall.
//!
//! Invariants, checked after every step and at the end:
//! - safety: every block committed anywhere at a height is the same block (no node ever
//!   truncates, since honest nodes never fork);
//! - the store never refuses a write the engine asked for (in particular a second signature
//!   at one height);
//! - after the network heals and every node is back: every operation acknowledged by any
//!   node (its `put_pending` write applied) is committed exactly once, every pending store
//!   is empty, and all chains are identical.
//!
//! In a third of the runs with two nodes or more, the last node starts outside the cell and
//! is admitted as a chain node by a membership change written at a random time: every node
//! commits the change at the same height, heights after it are decided with the new quorum
//! (the "two blocks decided" check uses it), and at the end every node is at the new
//! membership, the joiner's chain identical to the others'.
//!
//! A failure panics with its seed; `SIM_SEED=<seed> cargo test --test simulation` replays
//! it. `SIM_SEEDS=<n>` runs more seeds (default 400), `SIM_FIRST_SEED` moves the range.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use exo::chain::{
    Block, ChainStore, EntryKey, Membership, MembershipDocument, Operation, OperationId, Payload,
    SignedMembership,
};
use exo::config::{CellNode, Role};
use exo::engine::{self, ChainMessage, Config, Engine, Event, Input, Output};
use exocore_protocol::identity::{Keypair, PublicKey};

/// Simulated milliseconds between two ticks of a node.
pub const TICK_MS: u64 = 10;
/// Start of every node's clock, so that skews stay positive.
const EPOCH_MS: u64 = 1_767_225_600_000;
/// Small initial LMDB map: it grows on demand.
const MAP_SIZE_BYTES: usize = 1 << 20;

/// The knobs of one run, drawn from the seed.
#[derive(Debug, Clone)]
struct Params {
    nodes: usize,
    chaos_ms: u64,
    delay_max_ms: u64,
    drop_percent: u32,
    duplicate_percent: u32,
    /// Chance per millisecond, in millionths.
    write_ppm: u32,
    crash_ppm: u32,
    restart_ppm: u32,
    partition_ppm: u32,
    heal_ppm: u32,
    skew_max_ms: u64,
    /// Short timeouts against long delays make rounds race: dueling proposers, split votes.
    round_timeout_ms: u64,
    /// Chance per restart that the node comes back with a forked chain: a block at its
    /// next height, signed by a majority of chain keys, that the cell never decided (as if
    /// restored from another branch). Safety checks that assume honest nodes are off then;
    /// convergence and "nothing lost" are not.
    fork_percent: u32,
    /// The last node starts outside the cell (its messages and writes refused) and is
    /// admitted as a chain node by a membership change written during the run: `n`, the
    /// proposer order and the quorum change at the height after the change's block.
    joiner: bool,
}

impl Params {
    fn draw(rng: &mut fastrand::Rng) -> Params {
        let faulty = rng.u32(0..4) != 0;
        Params {
            nodes: rng.usize(1..=5),
            chaos_ms: rng.u64(1_500..4_000),
            delay_max_ms: rng.u64(1..60),
            drop_percent: if faulty { rng.u32(0..25) } else { 0 },
            duplicate_percent: if faulty { rng.u32(0..15) } else { 0 },
            write_ppm: rng.u32(2_000..15_000),
            crash_ppm: if faulty { rng.u32(0..1_500) } else { 0 },
            restart_ppm: rng.u32(500..3_000),
            partition_ppm: if faulty { rng.u32(0..1_000) } else { 0 },
            heal_ppm: rng.u32(500..3_000),
            skew_max_ms: rng.u64(0..2_000),
            round_timeout_ms: if rng.bool() {
                rng.u64(10..100)
            } else {
                rng.u64(100..600)
            },
            fork_percent: if faulty && rng.u32(0..5) == 0 {
                rng.u32(20..100)
            } else {
                0
            },
            joiner: false,
        }
        .with_joiner(rng)
    }

    /// In a third of the runs with two nodes or more, the last node joins during the run
    /// (without injected forks: a forged block is signed for one membership).
    fn with_joiner(mut self, rng: &mut fastrand::Rng) -> Params {
        if self.nodes >= 2 && rng.u32(0..3) == 0 {
            self.joiner = true;
            self.fork_percent = 0;
        }
        self
    }
}

/// The membership change of a run with a joiner: when it is written, on which node, and what
/// became of it.
struct Join {
    at_ms: u64,
    /// The change's operation once a node acknowledged it.
    written: Option<OperationId>,
    /// The height of the block that committed it.
    height: Option<u64>,
    /// The quorum from the height after it.
    quorum: usize,
}

struct Node {
    key: Keypair,
    dir: PathBuf,
    skew_ms: u64,
    tick_phase_ms: u64,
    /// `None` while crashed.
    live: Option<(ChainStore, Engine)>,
}

struct InFlight {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

struct Sim {
    seed: u64,
    rng: fastrand::Rng,
    params: Params,
    _tmp: tempfile::TempDir,
    cell: Keypair,
    entry_key: EntryKey,
    membership: Membership,
    config: Config,
    nodes: Vec<Node>,
    now_ms: u64,
    queue: BTreeMap<(u64, u64), InFlight>,
    seq: u64,
    /// Partition group of each node; `None`: no partition.
    groups: Option<Vec<u8>>,
    faults: bool,
    /// Whether a forked chain was injected (see `Params::fork_percent`).
    forked: bool,
    acked: BTreeSet<OperationId>,
    written_at: BTreeMap<OperationId, (usize, u64)>,
    committed: BTreeMap<u64, [u8; 32]>,
    /// Every durable acceptance: (height, round, block hash) -> acceptors. A block accepted
    /// by a majority in one round is decided; two decided blocks at a height is a bug even
    /// if no one committed them yet.
    acceptances: BTreeMap<(u64, u32, [u8; 32]), BTreeSet<usize>>,
    /// Decided block per Paxos instance: (height, parent hash).
    decided: BTreeMap<(u64, [u8; 32]), [u8; 32]>,
    latencies_ms: Vec<u64>,
    stats: Stats,
    join: Option<Join>,
}

#[derive(Debug, Default, Clone)]
struct Stats {
    messages: u64,
    dropped: u64,
    crashes: u64,
    rejected: u64,
    max_round: u32,
    forks_injected: u64,
    truncations: u64,
    /// Runs whose joiner was admitted (the change committed).
    joins: u64,
}

fn temp_root() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SIM_TMPDIR") {
        return Some(PathBuf::from(dir));
    }
    // A RAM disk makes fsync cheap; the store's durability is not what is tested here.
    let shm = PathBuf::from("/dev/shm");
    shm.is_dir().then_some(shm)
}

impl Sim {
    fn new(seed: u64, params: Params, config: Config) -> Sim {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut key = || {
            let mut seed_bytes = [0u8; 32];
            rng.fill(&mut seed_bytes);
            Keypair::from_seed(&seed_bytes)
        };
        let cell = key();
        let keys: Vec<Keypair> = (0..params.nodes).map(|_| key()).collect();
        let tmp = match temp_root() {
            Some(root) => tempfile::tempdir_in(root),
            None => tempfile::tempdir(),
        }
        .expect("temporary folder");
        let initial = if params.joiner {
            &keys[..keys.len() - 1]
        } else {
            &keys[..]
        };
        let membership = Membership::new(
            cell.public(),
            Vec::new(),
            initial.iter().map(Keypair::public).collect(),
        );
        let join = params.joiner.then(|| Join {
            at_ms: rng.u64(0..params.chaos_ms),
            written: None,
            height: None,
            quorum: keys.len() / 2 + 1,
        });
        let genesis = Block::genesis(&cell, EPOCH_MS * 1_000);
        let mut nodes = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            let dir = tmp.path().join(format!("node{i}"));
            let store = ChainStore::open(&dir, &cell.public(), MAP_SIZE_BYTES).expect("open store");
            store.append_block(&genesis).expect("genesis");
            drop(store);
            nodes.push(Node {
                key,
                dir,
                skew_ms: rng.u64(0..=params.skew_max_ms),
                tick_phase_ms: rng.u64(0..TICK_MS),
                live: None,
            });
        }
        let mut sim = Sim {
            seed,
            rng,
            params,
            _tmp: tmp,
            entry_key: EntryKey::from_cell_keypair(&cell),
            cell,
            membership,
            config,
            nodes,
            now_ms: 0,
            queue: BTreeMap::new(),
            seq: 0,
            groups: None,
            faults: true,
            forked: false,
            acked: BTreeSet::new(),
            written_at: BTreeMap::new(),
            committed: BTreeMap::new(),
            acceptances: BTreeMap::new(),
            decided: BTreeMap::new(),
            latencies_ms: Vec::new(),
            stats: Stats::default(),
            join,
        };
        for i in 0..sim.nodes.len() {
            sim.start(i);
        }
        sim
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "simulation seed {} failed at {} ms: {what}\nparams: {:?}\nreplay: SIM_SEED={} cargo test --test simulation",
            self.seed, self.now_ms, self.params, self.seed
        );
    }

    fn local_ms(&self, i: usize) -> u64 {
        EPOCH_MS + self.now_ms + self.nodes[i].skew_ms
    }

    fn start(&mut self, i: usize) {
        let now = self.local_ms(i);
        let node = &self.nodes[i];
        let store = ChainStore::open(&node.dir, &self.cell.public(), MAP_SIZE_BYTES)
            .unwrap_or_else(|e| self.fail(format!("node {i} reopen: {e}")));
        if self.faults
            && self.params.fork_percent > 0
            && self.rng.u32(0..100) < self.params.fork_percent
        {
            self.inject_fork(i, &store);
        }
        let node = &self.nodes[i];
        let engine = Engine::open(
            self.config.clone(),
            node.key.clone(),
            self.membership.clone(),
            &store,
            now,
        )
        .unwrap_or_else(|e| self.fail(format!("node {i} engine open: {e}")));
        self.nodes[i].live = Some((store, engine));
    }

    /// Appends to node `i`'s chain a block the cell never decided, signed by a majority of
    /// chain keys, carrying some of its pending operations.
    fn inject_fork(&mut self, i: usize, store: &ChainStore) {
        let tip = store.last_header().unwrap().unwrap();
        let ops = store.pending_range(.., 1 + self.rng.usize(0..8)).unwrap();
        let proposer = &self.nodes[i].key;
        let mut block = Block::propose(&tip, &proposer.public(), tip.time_us + 1, ops).unwrap();
        for node in self.nodes.iter().take(self.membership.quorum()) {
            block.sign(&self.cell.public(), &node.key);
        }
        block
            .verify(&tip, &self.membership)
            .unwrap_or_else(|e| self.fail(e));
        store.append_block(&block).unwrap_or_else(|e| self.fail(e));
        self.forked = true;
        self.stats.forks_injected += 1;
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i].live = None;
        self.queue.retain(|_, m| m.from != i && m.to != i);
        self.stats.crashes += 1;
    }

    fn reachable(&self, from: usize, to: usize) -> bool {
        self.groups.as_ref().is_none_or(|g| g[from] == g[to])
    }

    fn index_of(&self, key: &PublicKey) -> usize {
        self.nodes
            .iter()
            .position(|n| n.key.public() == *key)
            .unwrap_or_else(|| self.fail("message to an unknown node"))
    }

    /// Runs one input on node `i` and applies its output like the glue does.
    fn step(&mut self, i: usize, input: Input) {
        let now = self.local_ms(i);
        let output = {
            let Some((store, engine)) = self.nodes[i].live.as_mut() else {
                return;
            };
            engine.step(store, now, input)
        };
        // Crash points: before the output is durable (nothing of it lands: the vote and the
        // writes are one transaction), or after it is durable but before anything is sent.
        if self.faults && self.params.crash_ppm > 0 && self.rng.u32(0..20_000) == 0 {
            return self.crash(i);
        }
        self.apply(i, &output);
        if self.faults && self.params.crash_ppm > 0 && self.rng.u32(0..20_000) == 0 {
            self.observe(i, &output, now);
            return self.crash(i);
        }
        self.observe(i, &output, now);
        for message in output.messages {
            let to = self.index_of(&message.to);
            let bytes = message.message.to_bytes().unwrap_or_else(|e| self.fail(e));
            self.send(i, to, bytes);
        }
    }

    fn apply(&mut self, i: usize, output: &Output) {
        let Some((store, _)) = self.nodes[i].live.as_ref() else {
            return;
        };
        if let Err(e) = engine::apply(store, output) {
            self.fail(format!(
                "node {i}: the store refused the engine's writes: {e}"
            ));
        }
    }

    fn observe(&mut self, i: usize, output: &Output, now: u64) {
        let _ = now;
        if let Some(accepted) = output
            .vote
            .as_ref()
            .and_then(|v| v.accepted.as_ref().map(|a| (v.height, a)))
        {
            let (height, a) = accepted;
            let key = (height, a.round, a.block.hash());
            let acceptors = self.acceptances.entry(key).or_default();
            acceptors.insert(i);
            if acceptors.len() >= self.quorum_at(height) {
                let instance = (height, a.block.header.previous);
                match self.decided.get(&instance) {
                    Some(hash) if *hash != key.2 => {
                        self.fail(format!("two different blocks decided at height {height}"))
                    }
                    _ => {
                        self.decided.insert(instance, key.2);
                    }
                }
            }
        }
        for event in &output.events {
            match event {
                Event::OperationsAdded { ids, local: true } => {
                    for id in ids {
                        self.acked.insert(*id);
                        self.written_at.insert(*id, (i, self.now_ms));
                    }
                }
                Event::BlockCommitted {
                    height,
                    hash,
                    operations,
                } => {
                    if let Some(known) = self.committed.get(height) {
                        if known != hash && !self.forked {
                            self.fail(format!(
                                "node {i} committed another block at height {height}"
                            ));
                        }
                    } else {
                        self.committed.insert(*height, *hash);
                    }
                    for id in operations {
                        if let Some((writer, at)) = self.written_at.get(id) {
                            if *writer == i {
                                self.latencies_ms.push(self.now_ms - at);
                            }
                        }
                    }
                }
                Event::MembershipChanged { height, .. } => {
                    let Some(join) = self.join.as_mut() else {
                        self.fail("a membership change in a run without one")
                    };
                    match join.height {
                        Some(known) if known != *height => self.fail(format!(
                            "node {i} committed the membership change at height {height}, another at {known}"
                        )),
                        Some(_) => {}
                        None => {
                            join.height = Some(*height);
                            self.stats.joins += 1;
                        }
                    }
                }
                Event::ChainTruncated { .. } if self.forked => self.stats.truncations += 1,
                Event::ChainTruncated { from_height, .. } => {
                    self.fail(format!("node {i} truncated its chain from height {from_height}: honest nodes never fork"));
                }
                Event::RoundChanged { round, .. } => {
                    self.stats.max_round = self.stats.max_round.max(*round)
                }
                Event::Rejected { reason, .. } => {
                    self.stats.rejected += 1;
                    if std::env::var_os("SIM_VERBOSE").is_some() {
                        eprintln!(
                            "seed {} node {i} at {} ms refused: {reason}",
                            self.seed, self.now_ms
                        );
                    }
                }
                Event::StorageError { reason } => {
                    self.fail(format!("node {i}: storage error: {reason}"))
                }
                _ => {}
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        self.stats.messages += 1;
        if self.faults && self.rng.u32(0..100) < self.params.drop_percent {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.faults && self.rng.u32(0..100) < self.params.duplicate_percent {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now_ms + self.rng.u64(1..=self.params.delay_max_ms);
            self.seq += 1;
            self.queue.insert(
                (at, self.seq),
                InFlight {
                    from,
                    to,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    fn write(&mut self, i: usize) {
        let Some((store, _)) = self.nodes[i].live.as_ref() else {
            return;
        };
        let author = &self.nodes[i].key;
        let wall_us = self.local_ms(i) * 1_000;
        let ids = store
            .next_operation_ids(&author.public(), wall_us, 1)
            .unwrap_or_else(|e| self.fail(e));
        let payload = self.rng.u64(..).to_le_bytes();
        let op = Operation::new_entry(
            &self.cell.public(),
            &self.entry_key,
            ids[0],
            author,
            &payload,
        )
        .unwrap_or_else(|e| self.fail(e));
        self.step(
            i,
            Input::Write {
                operations: vec![op],
            },
        );
    }

    /// The quorum that decides `height`: the joiner counts from the height after the block
    /// that committed its admission.
    fn quorum_at(&self, height: u64) -> usize {
        match &self.join {
            Some(Join {
                height: Some(changed),
                quorum,
                ..
            }) if height > *changed => *quorum,
            _ => self.membership.quorum(),
        }
    }

    /// Writes the change admitting the joiner on a live node of the initial membership, once.
    fn write_join(&mut self) {
        let Some(join) = &self.join else { return };
        if join.written.is_some() || self.now_ms < join.at_ms {
            return;
        }
        let joiner = self.nodes.len() - 1;
        let Some(i) = (0..joiner).find(|i| self.nodes[*i].live.is_some()) else {
            return;
        };
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| CellNode {
                id: node.key.public(),
                name: format!("n{n}"),
                addresses: Vec::new(),
                roles: vec![Role::Chain],
            })
            .collect();
        let change = SignedMembership::sign(
            MembershipDocument {
                cell: self.cell.public(),
                version: 1,
                nodes,
            },
            &self.cell,
        );
        let Some((store, _)) = self.nodes[i].live.as_ref() else {
            return;
        };
        let author = &self.nodes[i].key;
        let ids = store
            .next_operation_ids(&author.public(), self.local_ms(i) * 1_000, 1)
            .unwrap_or_else(|e| self.fail(e));
        let op = Operation::sign(
            &self.cell.public(),
            ids[0],
            author,
            Payload::Membership(Box::new(change)),
        );
        let id = op.id;
        self.step(
            i,
            Input::Write {
                operations: vec![op],
            },
        );
        if self.acked.contains(&id) {
            if let Some(join) = self.join.as_mut() {
                join.written = Some(id);
            }
        }
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.rng.u32(0..1_000_000) < ppm
    }

    /// Advances simulated time by one millisecond.
    fn advance(&mut self) {
        self.now_ms += 1;
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now_ms {
                break;
            }
            let message = entry.remove();
            if self.nodes[message.to].live.is_none() || !self.reachable(message.from, message.to) {
                self.stats.dropped += 1;
                continue;
            }
            let decoded = ChainMessage::from_bytes(&message.bytes).unwrap_or_else(|e| self.fail(e));
            let from = self.nodes[message.from].key.public();
            self.step(
                message.to,
                Input::Message {
                    from,
                    message: decoded,
                },
            );
        }
        for i in 0..self.nodes.len() {
            if (self.now_ms + self.nodes[i].tick_phase_ms).is_multiple_of(TICK_MS) {
                self.step(i, Input::Tick);
            }
        }
        self.write_join();
        if self.faults {
            if self.chance(self.params.write_ppm) {
                let i = self.rng.usize(0..self.nodes.len());
                self.write(i);
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i].live.is_some() {
                    if self.chance(self.params.crash_ppm) {
                        self.crash(i);
                    }
                } else if self.chance(self.params.restart_ppm) {
                    self.start(i);
                }
            }
            if self.groups.is_none() && self.chance(self.params.partition_ppm) {
                let n = self.nodes.len();
                self.groups = Some((0..n).map(|_| self.rng.u8(0..2)).collect());
            } else if self.groups.is_some() && self.chance(self.params.heal_ppm) {
                self.groups = None;
            }
        }
    }

    fn converged(&self) -> bool {
        let mut tips = BTreeSet::new();
        for node in &self.nodes {
            let Some((_, engine)) = node.live.as_ref() else {
                return false;
            };
            if engine.pending_count() > 0 {
                return false;
            }
            // A run with a joiner ends once everyone, the joiner included, admitted it.
            if self.join.is_some() && engine.membership().version() != 1 {
                return false;
            }
            tips.insert(engine.tip().hash());
        }
        tips.len() == 1
    }

    /// Chaos, then heal everything and wait for convergence; then the final checks.
    fn run(&mut self) {
        while self.now_ms < self.params.chaos_ms {
            self.advance();
        }
        self.faults = false;
        self.groups = None;
        for i in 0..self.nodes.len() {
            if self.nodes[i].live.is_none() {
                self.start(i);
            }
        }
        let deadline = self.now_ms + 120_000;
        while !self.converged() {
            if self.now_ms >= deadline {
                let state: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| {
                        let (_, e) = n.live.as_ref().unwrap();
                        e.describe()
                    })
                    .collect();
                self.fail(format!("no convergence 120 s after healing: {state:?}"));
            }
            self.advance();
        }
        self.check_final();
    }

    fn check_final(&self) {
        let mut reference: Option<Vec<[u8; 32]>> = None;
        for (i, node) in self.nodes.iter().enumerate() {
            let (store, _) = node.live.as_ref().unwrap();
            let height = store.height().unwrap().unwrap();
            let mut hashes = Vec::new();
            let mut seen = BTreeSet::new();
            for h in 0..=height {
                let block = store.get_block(h).unwrap().unwrap();
                hashes.push(block.hash());
                for op in &block.operations {
                    if !seen.insert(op.id) {
                        self.fail(format!("node {i}: operation {} committed twice", op.id));
                    }
                }
            }
            for id in &self.acked {
                if !seen.contains(id) {
                    self.fail(format!(
                        "node {i}: acknowledged operation {id} never committed"
                    ));
                }
            }
            if store.pending_count().unwrap() != 0 {
                self.fail(format!("node {i}: pending store not empty"));
            }
            match &reference {
                None => reference = Some(hashes),
                Some(r) if *r != hashes => self.fail(format!("node {i}: chain differs")),
                Some(_) => {}
            }
        }
        if let Some(join) = &self.join {
            for (i, node) in self.nodes.iter().enumerate() {
                let (_, engine) = node.live.as_ref().unwrap();
                let membership = engine.membership();
                if membership.version() != 1 || membership.quorum() != join.quorum {
                    self.fail(format!(
                        "node {i}: membership version {} quorum {} after the joiner's admission",
                        membership.version(),
                        membership.quorum()
                    ));
                }
            }
        }
        if self.forked {
            return;
        }
        for (height, hash) in &self.committed {
            if reference.as_ref().unwrap().get(*height as usize) != Some(hash) {
                self.fail(format!(
                    "committed block at height {height} is not in the final chain"
                ));
            }
        }
    }
}

fn sim_config(params: &Params) -> Config {
    Config {
        propose_delay_ms: 20,
        round_timeout_ms: params.round_timeout_ms,
        resend_interval_ms: 100,
        pending_sync_interval_ms: 300,
        status_interval_ms: 300,
        request_timeout_ms: 500,
        pending_operations_max: 100_000,
    }
}

fn run_seed(seed: u64) -> (Params, Stats, usize, u64) {
    let params = Params::draw(&mut fastrand::Rng::with_seed(seed ^ 0x5eed));
    let mut sim = Sim::new(seed, params.clone(), sim_config(&params));
    sim.run();
    let height = sim.committed.keys().last().copied().unwrap_or(0);
    (params, sim.stats.clone(), sim.acked.len(), height)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a number: {v}"))
    })
}

#[test]
fn invariants_hold_over_many_seeds() {
    let started = std::time::Instant::now();
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("SIM_FIRST_SEED").unwrap_or(1);
            let count = env_u64("SIM_SEEDS").unwrap_or(400);
            (first..first + count).collect()
        }
    };
    let mut totals = Stats::default();
    let (mut ops, mut blocks) = (0usize, 0u64);
    for seed in &seeds {
        let (params, stats, acked, height) = run_seed(*seed);
        if seeds.len() == 1 {
            eprintln!("seed {seed}: {params:?}\n  {stats:?}, {acked} operations acknowledged, height {height}");
        }
        totals.messages += stats.messages;
        totals.dropped += stats.dropped;
        totals.crashes += stats.crashes;
        totals.rejected += stats.rejected;
        totals.max_round = totals.max_round.max(stats.max_round);
        totals.forks_injected += stats.forks_injected;
        totals.truncations += stats.truncations;
        totals.joins += stats.joins;
        ops += acked;
        blocks += height;
    }
    eprintln!(
        "simulation: {} seeds in {:.1} s: {ops} operations and {blocks} blocks committed, {} messages ({} lost), {} crashes, {} inputs refused, highest round {}, {} forks injected, {} truncations, {} nodes admitted by a membership change",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        totals.messages,
        totals.dropped,
        totals.crashes,
        totals.rejected,
        totals.max_round,
        totals.forks_injected,
        totals.truncations,
        totals.joins
    );
}

/// Three nodes, no faults, 1..=5 ms of network delay: the time from a write's
/// acknowledgement to its commit on the writing node, in ticks of 10 ms: (p50, p99, writes).
/// Also reported by `make bench` (`examples/chain_bench.rs` includes this file).
pub fn three_node_commit_latency_ticks() -> (f64, f64, usize) {
    let params = Params {
        nodes: 3,
        chaos_ms: 5_000,
        delay_max_ms: 5,
        drop_percent: 0,
        duplicate_percent: 0,
        write_ppm: 10_000,
        crash_ppm: 0,
        restart_ppm: 0,
        partition_ppm: 0,
        heal_ppm: 0,
        skew_max_ms: 500,
        round_timeout_ms: 300,
        fork_percent: 0,
        joiner: false,
    };
    let config = sim_config(&params);
    let mut sim = Sim::new(42, params, config);
    sim.run();
    let mut latencies = sim.latencies_ms.clone();
    latencies.sort_unstable();
    let at =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / TICK_MS as f64;
    (at(0.5), at(0.99), latencies.len())
}

#[test]
fn three_nodes_commit_within_a_few_ticks() {
    let (p50, p99, count) = three_node_commit_latency_ticks();
    eprintln!("simulated 3-node commit latency: p50 {p50} ticks, p99 {p99} ticks ({count} writes, tick = {TICK_MS} ms)");
    assert!(count > 10);
    assert!(p99 <= 10.0, "p99 {p99} ticks");
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let params = Params::draw(&mut fastrand::Rng::with_seed(seed ^ 0x5eed));
        let mut sim = Sim::new(seed, params.clone(), sim_config(&params));
        sim.run();
        let tips: Vec<[u8; 32]> = sim
            .nodes
            .iter()
            .map(|n| n.live.as_ref().unwrap().1.tip().hash())
            .collect();
        (
            sim.now_ms,
            sim.stats.messages,
            sim.stats.dropped,
            sim.acked.clone(),
            tips,
        )
    };
    assert_eq!(run(7), run(7));
}

/// A chain-sync answer carrying a block with a forged signature is refused with a
/// `Rejected` event, nothing is written, and the chain stays intact.
#[test]
fn forged_blocks_from_chain_sync_are_refused() {
    let params = Params {
        nodes: 2,
        chaos_ms: 1_000,
        delay_max_ms: 2,
        drop_percent: 0,
        duplicate_percent: 0,
        write_ppm: 20_000,
        crash_ppm: 0,
        restart_ppm: 0,
        partition_ppm: 0,
        heal_ppm: 0,
        skew_max_ms: 0,
        round_timeout_ms: 300,
        fork_percent: 0,
        joiner: false,
    };
    let config = sim_config(&params);
    let mut sim = Sim::new(9, params, config);
    sim.run();
    let (store, _) = sim.nodes[0].live.as_ref().unwrap();
    let height = store.height().unwrap().unwrap();
    assert!(height >= 2);
    let mut forged = store.get_block(height).unwrap().unwrap();
    forged.signatures[0].signature[0] ^= 1;
    let tip = store.get_header(height).unwrap().unwrap();
    // A fresh node at genesis, whose only peer claims a higher chain.
    let tmp = tempfile::tempdir().unwrap();
    let fresh = ChainStore::open(tmp.path(), &sim.cell.public(), MAP_SIZE_BYTES).unwrap();
    fresh
        .append_block(&store.get_block(0).unwrap().unwrap())
        .unwrap();
    let key = sim.nodes[1].key.clone();
    let peer = sim.nodes[0].key.public();
    let mut engine =
        Engine::open(config_for_test(), key, sim.membership.clone(), &fresh, 0).unwrap();
    let status = ChainMessage::Status(engine::message::Status {
        height,
        hash: tip.hash(),
    });
    let _ = engine.step(
        &fresh,
        1,
        Input::Message {
            from: peer,
            message: status,
        },
    );
    let out = engine.step(&fresh, 2, Input::Tick);
    let request_id = out
        .messages
        .iter()
        .find_map(|m| match &m.message {
            ChainMessage::GetBlocks(g) if m.to == peer => Some(g.request_id),
            _ => None,
        })
        .expect("a block request");
    let mut blocks = store.blocks(1, 32, 1 << 22).unwrap();
    let last = blocks.len() - 1;
    blocks[last] = forged;
    let answer = ChainMessage::Blocks(engine::message::Blocks {
        request_id,
        tip: engine::message::Status {
            height,
            hash: tip.hash(),
        },
        blocks,
    });
    let out = engine.step(
        &fresh,
        3,
        Input::Message {
            from: peer,
            message: answer,
        },
    );
    assert!(out.writes.is_empty(), "{:?}", out.writes);
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::Rejected { reason, .. } if reason.contains("invalid block"))));
    assert_eq!(fresh.height().unwrap(), Some(0));
}

fn config_for_test() -> Config {
    Config::default()
}
