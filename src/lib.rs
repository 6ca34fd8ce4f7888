//! Exocore: a personal cloud on machines you own.
//!
//! The `exo` binary is a thin shell over this library: [`cli`] parses commands, [`config`]
//! owns a node's files, [`daemon`] runs a node. The wire contract lives in the
//! `exocore-protocol` crate; the written one in `spec/`.

// `deny`, not `forbid`: `chain::store::lmdb` holds the only two `unsafe` calls of the crate
// (opening and growing the LMDB map, whose heed functions are `unsafe`), each in a small
// function with `#[allow(unsafe_code)]` and a SAFETY comment.
#![deny(unsafe_code)]
#![warn(rust_2018_idioms)]

pub mod apps;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod engine;
pub mod join;
pub mod net;
pub mod store;
