//! Helpers for hotline's integration tests: dial a server from a real SIP
//! client (PJSIP through `tests/callers/pjcall.py`) over 127.0.0.1, and check
//! what was heard, when, and what arrived.
//!
//! Use from a test file as `mod common;`. Every external process runs with a
//! timeout; a missing tool fails the test with a message that says to run
//! `tests/callers/INSTALL.sh` (nothing is skipped silently).
//!
//! - [`ports`]: free UDP/TCP ports and UDP port ranges on 127.0.0.1.
//! - [`pjcall`]: run `pjcall.py` and parse its JSON report.
//! - [`wav`]: read/write WAVs, split a recording into talk spurts.
//! - [`audio`]: caller audio: committed fixtures, sox and espeak-ng at test time.
//! - [`server`]: a guard that starts a process, waits until it is ready, and
//!   kills it on drop.
//! - [`hotline`]: `hotline serve` on its own ports and data, and reading it back.
//! - [`sipp`]: SIPp as a UAS, a stand-in server for the harness's own tests.
//! - [`tools`]: tool checks and running a command with a timeout.

// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

pub mod audio;
pub mod hotline;
pub mod pjcall;
pub mod ports;
pub mod server;
pub mod sipp;
pub mod tools;
pub mod torture;
pub mod wav;

use std::path::PathBuf;

/// A path inside the repository (the crate root).
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}
