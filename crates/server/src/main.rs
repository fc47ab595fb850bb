//! The `clinic` binary. See `clinic --help`.

fn main() -> std::process::ExitCode {
    clinic_server::cli::main()
}
