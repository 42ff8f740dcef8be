#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hashroll::cmd::cli::main()
}
