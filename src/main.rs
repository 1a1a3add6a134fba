//! Amico's command line: the server, its configuration check, the simulator and the
//! staffing calculator. The commands live in the library ([`amico::main`]).

/// jemalloc, with its background threads purging freed pages: with glibc's allocator a
/// server that took 200 calls a second for 30 s still held 243 MB a minute after the last
/// call (from 35 MB at rest); see BENCHMARKS.md, "After the load". The feature
/// `system-allocator` leaves it out, for heap profilers that hook glibc's `malloc`.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    amico::main()
}
