fn main() -> std::process::ExitCode {
    runbook::app::main()
}
