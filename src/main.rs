//! The `howl` binary; everything lives in the library.

/// mimalloc instead of the system allocator: events are allocated on one
/// worker thread and freed on another, a pattern glibc's malloc handles
/// poorly (it was ~30% of CPU time on the remap benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    howl::cli::main()
}
