/// mimalloc returns freed memory to the system and fragments less than the
/// system allocator under tokio's many threads: a 100k-member resync peaks
/// far lower with it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match orgsync_api::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orgsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
