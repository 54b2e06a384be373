//! # regent-augeas
//!
//! Configuration files edited through Augeas (libaugeas, through the `raugeas`
//! binding), confined to what was declared: one lens and one file.
//!
//! - [`AugFile`]: the Rust API, for library operations: a file loaded with its
//!   one lens (module autoload off: `Sshd.lns` is compiled, no other lens, and
//!   only the declared file is read), and the eight exmachina calls on it
//!   ([`AugFile::matches`], [`AugFile::get`], [`AugFile::set`],
//!   [`AugFile::setm`], [`AugFile::insert`], [`AugFile::mv`],
//!   [`AugFile::remove`], [`AugFile::save`]), plus [`AugFile::preview`], the
//!   unified diff a save would make.
//! - [`Lens`]: a lens compiled once ([`Lens::compile`], the costly part of a
//!   load), then a file opened with it ([`Lens::open`]): how a worker that
//!   forks per request answers in a millisecond or two.
//! - [`run`] / [`run_decl`] / [`run_with`]: a declared [`regent_model::AugeasDecl`]'s actions,
//!   expanded, applied together and saved once, or nothing written; the
//!   [`Answer`] as JSON.
//!
//! Guarantees: a path is relative to the file's tree and checked
//! ([`regent_model::augeas::check_path`]) before Augeas sees it, and every node
//! it matches must lie under the file's tree; Augeas's errors are read from
//! `/augeas//error` after the load and after every save (libaugeas reports a
//! failed save as a success); a request whose action fails writes nothing; a
//! dry run writes nothing. Saving is atomic for the one file (Augeas writes a
//! temporary file beside it and renames it).
//!
//! **Boundaries.** The only crate that links libaugeas. Imports `regent-model`
//! (the declaration and its checks) and nothing else of Regent's; the daemon
//! runs it in a confined child process, never in its own.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod diff;
mod error;
mod file;
mod run;

pub use diff::{redact, unified, REDACTED};
pub use error::Error;
pub use file::{content_hash, AugFile, Lens, Node, Preview, Saved};
pub use run::{run, run_decl, run_with, Answer, RunOptions};
