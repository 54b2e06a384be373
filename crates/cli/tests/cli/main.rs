//! End-to-end tests: the real `regent` binary as daemon and as client, real
//! processes, and genuinely unprivileged users created for the purpose.
mod audit_log;
mod client_safety;
mod core;
mod hostile;
mod path_race;
mod pending;
mod privilege;
mod review;
mod sandbox;
mod security;
mod server;
mod store;
mod tls;
mod util;
