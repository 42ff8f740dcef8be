#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hashroll::cli::main()
}
