fn main() -> std::process::ExitCode {
    match orgsync_api::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orgsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
