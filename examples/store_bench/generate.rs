//! Realistic entities for the store benchmark (issue 5, "Performance"), deterministic from a
//! seed: the same seed and count give the same operations, byte for byte, on every machine.
//!
//! # What is generated
//!
//! One entity per operation (one store entry each, as the CLI writes them), mostly notes and
//! tasks:
//!
//! | share | entity | traits and fields |
//! |---|---|---|
//! | 0.5 % | collection | `collection`: name, description (created first, so members can point to them) |
//! | 45 % of the rest | note | `note`: title (3-8 words), body (2-9 sentences of 5-18 words) |
//! | 37 % | task | `task`: title, notes (40 %), done (30 % true), priority 0-4, due (70 %, within two years), tags (0-3) |
//! | 10 % | bookmark | `bookmark`: url, title, description (60 %), tags (0-4), visited (50 %) |
//! | 8 % | contact | `contact`: name, emails (1-2), phones (0-2), organization (50 %), birthday (40 %), notes (20 %) |
//!
//! 30 % of notes, tasks and bookmarks also have a `collection_member` trait referencing a
//! collection (with a position), and 5 % of tasks get a second operation later that marks
//! them done (an update). Operation ids start at 2025-01-01T00:00:00Z and advance by 1 s to
//! 10 min, so the corpus spans about a year; all from one node.
//!
//! # Where the words come from
//!
//! Nothing is downloaded. The vocabulary is:
//!
//! - [`FUNCTION_WORDS`]: about a hundred common English words, written out below, which make
//!   up ~35 % of the words of every text (as in real prose), never used as query words;
//! - [`CONTENT_WORDS`] pseudo-words (`brailmon`, `strouk`, ...) built by the generator from
//!   syllables (onset + vowel + coda, 1 to 3 syllables) drawn from the seeded generator,
//!   deduplicated, ranked in generation order. Text picks them with a Zipf law (the word of
//!   rank r with weight 1/(r+1)), so a few words are in most texts and most words in few,
//!   as in natural language;
//! - first and last names, organisation and top-level-domain names, and tags are taken from
//!   the same content words (capitalised where needed).
//!
//! The benchmark's full-text queries draw their 1-2 words from the content words with the
//! same Zipf law: frequent words (matching a large share of the index) are queried most.

use exo::chain::OperationId;
use exo::store::{Entry, Mutation, Reference, Scalar, Schemas, Trait, Value};

/// Common English words, the most frequent words of any text.
pub const FUNCTION_WORDS: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on",
    "are", "with", "as", "I", "his", "they", "be", "at", "one", "have", "this", "from", "or",
    "had", "by", "not", "but", "what", "some", "we", "can", "out", "other", "were", "all", "there",
    "when", "up", "use", "your", "how", "said", "an", "each", "she", "which", "do", "their",
    "time", "if", "will", "way", "about", "many", "then", "them", "would", "like", "so", "these",
    "her", "long", "make", "thing", "see", "him", "two", "has", "look", "more", "day", "could",
    "go", "come", "did", "my", "no", "most", "who", "over", "know", "than", "call", "first", "may",
    "down", "side", "been", "now", "find", "any", "new", "work", "part", "take", "get", "place",
    "made", "live", "where", "after", "back", "little", "only", "round", "year", "came", "show",
    "every", "good", "me", "give", "our", "under",
];

/// How many pseudo-words the vocabulary has.
pub const CONTENT_WORDS: usize = 6_000;

/// 2025-01-01T00:00:00Z in microseconds.
pub const START_US: u64 = 1_735_689_600_000_000;
/// The node tag of every generated operation id.
pub const NODE_TAG: u64 = 0x6578_6f62_656e_6368;

const ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
    "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr", "str", "qu",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y"];
const CODAS: &[&str] = &[
    "", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "rk",
];

/// SplitMix64: small, fast, and the same everywhere (no dependency whose stream could
/// change between versions).
pub struct Rng(u64);

impl Rng {
    /// A generator for this seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One word of a non-empty list.
    pub fn pick_str(&mut self, words: &[&'static str]) -> &'static str {
        words[self.below(words.len() as u64) as usize]
    }

    /// One item of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The words texts are made of.
pub struct Vocabulary {
    /// Pseudo-words, by rank (most frequent first).
    pub content: Vec<String>,
    /// Cumulative Zipf weights of `content`, normalised to end at 1.
    cumulative: Vec<f64>,
}

impl Vocabulary {
    /// Builds the pseudo-words from the seeded generator.
    pub fn new(rng: &mut Rng) -> Vocabulary {
        let mut seen = std::collections::HashSet::new();
        let mut content = Vec::with_capacity(CONTENT_WORDS);
        while content.len() < CONTENT_WORDS {
            let syllables = 1 + rng.below(3);
            let mut word = String::new();
            for _ in 0..syllables {
                word.push_str(rng.pick_str(ONSETS));
                word.push_str(rng.pick_str(VOWELS));
                word.push_str(rng.pick_str(CODAS));
            }
            if word.len() >= 3
                && !FUNCTION_WORDS.contains(&word.as_str())
                && seen.insert(word.clone())
            {
                content.push(word);
            }
        }
        let mut cumulative = Vec::with_capacity(CONTENT_WORDS);
        let mut total = 0.0;
        for rank in 0..CONTENT_WORDS {
            total += 1.0 / (rank as f64 + 1.0);
            cumulative.push(total);
        }
        for c in &mut cumulative {
            *c /= total;
        }
        Vocabulary {
            content,
            cumulative,
        }
    }

    /// A content word, Zipf-distributed.
    pub fn content_word(&self, rng: &mut Rng) -> &str {
        let u = rng.unit();
        let rank = self.cumulative.partition_point(|&c| c < u);
        &self.content[rank.min(self.content.len() - 1)]
    }

    /// A word of running text: a function word 35 % of the time.
    fn text_word(&self, rng: &mut Rng) -> &str {
        if rng.chance(0.35) {
            rng.pick_str(FUNCTION_WORDS)
        } else {
            self.content_word(rng)
        }
    }

    fn words(&self, rng: &mut Rng, low: u64, high: u64) -> String {
        let n = rng.range(low, high);
        let mut out = String::new();
        for i in 0..n {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(self.text_word(rng));
        }
        out
    }

    fn sentence(&self, rng: &mut Rng) -> String {
        let mut s = capitalise(&self.words(rng, 5, 18));
        s.push_str(if rng.chance(0.1) { "?" } else { "." });
        s
    }

    fn paragraph(&self, rng: &mut Rng, low: u64, high: u64) -> String {
        let n = rng.range(low, high);
        (0..n)
            .map(|_| self.sentence(rng))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn title(&self, rng: &mut Rng, low: u64, high: u64) -> String {
        capitalise(&self.words(rng, low, high))
    }

    /// A tag: one of the 200 most frequent content words.
    fn tag(&self, rng: &mut Rng) -> String {
        self.content[rng.below(200) as usize].clone()
    }

    fn tags(&self, rng: &mut Rng, high: u64) -> Value {
        let n = rng.range(0, high);
        let mut tags: Vec<String> = (0..n).map(|_| self.tag(rng)).collect();
        tags.sort();
        tags.dedup();
        Value::List(tags.into_iter().map(Scalar::String).collect())
    }

    fn name(&self, rng: &mut Rng) -> String {
        let first = &self.content[rng.below(400) as usize];
        let last = &self.content[rng.below(3000) as usize];
        format!("{} {}", capitalise(first), capitalise(last))
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A 26-character id in the alphabet of generated ids (lowercase base32), from the seeded
/// generator.
fn id(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..26)
        .map(|_| ALPHABET[rng.below(32) as usize] as char)
        .collect()
}

/// The kinds of generated entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A collection.
    Collection,
    /// A note.
    Note,
    /// A task.
    Task,
    /// A bookmark.
    Bookmark,
    /// A contact.
    Contact,
}

/// The generated operations: `(id, plaintext)` in id order, ready for
/// `StoreIndex::rebuild`.
pub struct Corpus {
    /// Every operation.
    pub operations: Vec<(OperationId, Vec<u8>)>,
    /// Entities by kind.
    pub counts: std::collections::BTreeMap<&'static str, usize>,
    /// Traits put in all.
    pub traits: usize,
    /// Total plaintext bytes.
    pub plaintext_bytes: usize,
    /// The time after the last operation, for later ids.
    pub next_time_us: u64,
    /// The vocabulary the texts were drawn from.
    pub vocabulary: Vocabulary,
}

/// Generates `entities` entities from `seed`; every trait is validated against the
/// built-in schemas (panics otherwise: a bug in the generator).
pub fn generate(seed: u64, entities: usize) -> Corpus {
    let mut rng = Rng::new(seed);
    let vocabulary = Vocabulary::new(&mut rng);
    let schemas = Schemas::builtin();
    let collections = (entities / 200).max(1);
    let mut collection_ids: Vec<String> = Vec::with_capacity(collections);
    let mut time = START_US;
    let mut next_id = |rng: &mut Rng| {
        time += rng.range(1_000_000, 600_000_000);
        OperationId {
            time_us: time,
            node: NODE_TAG,
        }
    };
    let mut operations = Vec::with_capacity(entities + entities / 20);
    let mut later: Vec<(String, Trait)> = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    let mut traits = 0usize;
    let v = &vocabulary;
    for i in 0..entities {
        let kind = if i < collections {
            Kind::Collection
        } else {
            match rng.below(100) {
                0..=44 => Kind::Note,
                45..=81 => Kind::Task,
                82..=91 => Kind::Bookmark,
                _ => Kind::Contact,
            }
        };
        let entity = id(&mut rng);
        let mut puts: Vec<Trait> = Vec::with_capacity(2);
        let main = match kind {
            Kind::Collection => {
                collection_ids.push(entity.clone());
                let mut t = Trait::new("c", "collection").with("name", v.title(&mut rng, 1, 3));
                if rng.chance(0.7) {
                    t.set("description", v.sentence(&mut rng).into());
                }
                t
            }
            Kind::Note => Trait::new("n", "note")
                .with("title", v.title(&mut rng, 3, 8))
                .with("body", v.paragraph(&mut rng, 2, 9)),
            Kind::Task => {
                let mut t = Trait::new("t", "task")
                    .with("title", v.title(&mut rng, 3, 9))
                    .with("done", rng.chance(0.3))
                    .with("priority", rng.below(5) as i64);
                if rng.chance(0.4) {
                    t.set("notes", v.paragraph(&mut rng, 1, 3).into());
                }
                if rng.chance(0.7) {
                    let due = START_US + rng.below(2 * 365 * 86_400) * 1_000_000;
                    t.set("due", Value::Timestamp(due as i64));
                }
                let tags = v.tags(&mut rng, 3);
                if tags != Value::List(Vec::new()) {
                    t.set("tags", tags);
                }
                if rng.chance(0.05) {
                    later.push((entity.clone(), t.clone().with("done", true)));
                }
                t
            }
            Kind::Bookmark => {
                let tld = ["com", "org", "net", "io", "dev", "fr", "de"];
                let url = format!(
                    "https://{}.{}/{}/{}",
                    v.content_word(&mut rng),
                    rng.pick_str(&tld),
                    v.content_word(&mut rng),
                    v.content_word(&mut rng)
                );
                let mut t = Trait::new("b", "bookmark")
                    .with("url", url)
                    .with("title", v.title(&mut rng, 2, 8));
                if rng.chance(0.6) {
                    t.set("description", v.sentence(&mut rng).into());
                }
                let tags = v.tags(&mut rng, 4);
                if tags != Value::List(Vec::new()) {
                    t.set("tags", tags);
                }
                if rng.chance(0.5) {
                    let visited = START_US + rng.below(365 * 86_400) * 1_000_000;
                    t.set("visited", Value::Timestamp(visited as i64));
                }
                t
            }
            Kind::Contact => {
                let name = v.name(&mut rng);
                let handle = name.to_lowercase().replace(' ', ".");
                let mut emails = vec![Scalar::String(format!(
                    "{handle}@{}.com",
                    v.content_word(&mut rng)
                ))];
                if rng.chance(0.3) {
                    emails.push(Scalar::String(format!("{handle}@mail.example")));
                }
                let mut t = Trait::new("p", "contact")
                    .with("name", name)
                    .with("emails", Value::List(emails));
                let phones: Vec<Scalar> = (0..rng.below(3))
                    .map(|_| Scalar::String(format!("+33 6 {:08}", rng.below(100_000_000))))
                    .collect();
                if !phones.is_empty() {
                    t.set("phones", Value::List(phones));
                }
                if rng.chance(0.5) {
                    let org = format!("{} Ltd", capitalise(v.content_word(&mut rng)));
                    t.set("organization", org.into());
                }
                if rng.chance(0.4) {
                    // 1950 to 2005.
                    let birthday = -631_152_000 + rng.below(55 * 365 * 86_400) as i64;
                    t.set("birthday", Value::Timestamp(birthday * 1_000_000));
                }
                if rng.chance(0.2) {
                    t.set("notes", v.sentence(&mut rng).into());
                }
                t
            }
        };
        puts.push(main);
        if matches!(kind, Kind::Note | Kind::Task | Kind::Bookmark) && rng.chance(0.3) {
            let collection = rng.pick(&collection_ids).clone();
            puts.push(
                Trait::new("m", "collection_member")
                    .with("collection", Reference::entity(collection))
                    .with("position", rng.unit() * 1000.0),
            );
        }
        *counts.entry(kind_name(kind)).or_insert(0) += 1;
        traits += puts.len();
        let mutations = puts
            .into_iter()
            .map(|value| {
                if let Err(e) = schemas.validate(&value) {
                    panic!("generated an invalid {} trait: {e}", value.trait_type);
                }
                Mutation::PutTrait {
                    entity: entity.clone(),
                    value,
                }
            })
            .collect();
        operations.push((next_id(&mut rng), Entry::Mutations(mutations).to_bytes()));
    }
    for (entity, value) in later {
        traits += 1;
        let entry = Entry::Mutations(vec![Mutation::PutTrait { entity, value }]);
        operations.push((next_id(&mut rng), entry.to_bytes()));
    }
    let next_time_us = next_id(&mut rng).time_us;
    let plaintext_bytes = operations.iter().map(|(_, b)| b.len()).sum();
    Corpus {
        operations,
        counts,
        traits,
        plaintext_bytes,
        next_time_us,
        vocabulary,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Collection => "collection",
        Kind::Note => "note",
        Kind::Task => "task",
        Kind::Bookmark => "bookmark",
        Kind::Contact => "contact",
    }
}
