//! `runbook`: runs operational runbooks written as rhai scripts.

mod app;
mod cli;
mod commands;
mod dashboard;
mod error;
mod repl;
mod settings;
mod terminal;
mod ui;
mod view;
mod wiring;

/// rhai walks nested values recursively (size checks, clones, drops), and a script decides
/// how deep they nest before any of our own checks sees them: a roomy stack turns what
/// would be a stack-overflow abort into rhai's array-size error. Only touched pages cost
/// memory.
const STACK_BYTES: usize = 512 << 20;

fn main() -> std::process::ExitCode {
    one_heap();
    let spawned = std::thread::Builder::new()
        .name("runbook".into())
        .stack_size(STACK_BYTES)
        .spawn(app::main);
    match spawned {
        Ok(handle) => handle.join().unwrap_or(std::process::ExitCode::from(101)),
        // No thread to be had (a tight ulimit): run here, with the usual stack.
        Err(_) => app::main(),
    }
}

/// glibc gives each thread that allocates an arena of its own, grown a page at a time: the
/// app thread's took 460 `mprotect` calls per rotation. This process has a handful of
/// threads, so they share the main heap, grown 16 MiB at a time (address space: only the
/// pages touched are memory).
fn one_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}
