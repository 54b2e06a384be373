//! The bench's service under test, as its own process: see `regent_bench::server`.

fn main() {
    if let Err(e) = regent_bench::server::server_main(std::env::args().skip(1)) {
        eprintln!("regent-bench-server: {e}");
        std::process::exit(1);
    }
}
