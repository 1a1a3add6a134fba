//! Amico's command line: the server, its configuration check, the simulator and the
//! staffing calculator. The commands live in the library ([`amico::main`]).

fn main() -> std::process::ExitCode {
    amico::main()
}
