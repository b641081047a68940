//! The `clnrm` binary: process setup only; the command line lives in `clnrm::cli`.

// Many small allocations on several threads (rayon, tokio, sled): the system allocator
// spent more time growing its per-thread arenas than clnrm spent on a cached run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // With transparent huge pages on "always", every fresh heap segment is a 2 MiB page
    // the kernel zeroes: more than half of a cached run's time. A short-lived CLI gains
    // nothing from huge pages.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    clnrm::cli::main()
}
