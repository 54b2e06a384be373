//! Integration tests: a real service on a temporary Unix socket, real clients.
//! One test binary; helpers in `util`.

mod core;
mod event_loop;
mod interop;
mod pending;
mod util;
