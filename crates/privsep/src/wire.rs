//! What the client and the helper agree on: the hidden argument of a helper
//! command, the built-in ping and the longest line on the private channel.

/// The hidden first argument that makes [`crate::helper_main`] run a helper.
pub const HELPER_FLAG: &str = "--regent-privsep-helper";
/// The operation a client sends to check a fresh helper; it answers
/// `{"context", "pid"}`. Not a Rust identifier, so no entrypoint can take the name.
pub(crate) const PING: &str = "privsep.ping";
/// Longest line on the private channel.
pub(crate) const MAX_LINE: usize = 16 * 1024 * 1024;
