//! End-to-end tests: the real `regent` binary as daemon and as client, real
//! processes, and genuinely unprivileged users created for the purpose.
mod activation;
mod audit_log;
mod augeas;
mod client_safety;
mod core;
mod hostile;
mod journal;
mod modules;
mod panel;
mod path_race;
mod pending;
mod privilege;
mod reload;
mod review;
mod sandbox;
mod security;
mod server;
mod sockets;
mod status;
mod store;
mod systemd;
mod tls;
mod tls_tools;
mod util;
