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
/// app thread's took 460 `mprotect` calls per rotation. Its threads share the main heap
/// instead (its other settings stay glibc's own, the dynamic mmap threshold with them), unless
/// the operator tuned the allocator through the environment. Linux with glibc only.
fn one_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && std::env::var_os("GLIBC_TUNABLES").is_none()
    {
        // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
