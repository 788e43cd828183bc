//! One tokio runtime per process, owned by a synchronous `main`: rhai host functions are
//! synchronous and block on async vendor calls, racing them against Ctrl-C.

use std::future::Future;

/// The call was abandoned because the operator pressed Ctrl-C.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted;

pub struct Runtime {
    rt: tokio::runtime::Runtime,
}

impl Runtime {
    /// Builds the runtime and starts listening for Ctrl-C.
    pub fn new() -> std::io::Result<Runtime> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("runbook-io")
            .enable_all()
            .build()?;
        crate::interrupt::install(&rt);
        Ok(Runtime { rt })
    }

    /// Runs a future to completion, or gives up on it when Ctrl-C is pressed.
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, Interrupted> {
        if crate::interrupt::is_set() {
            return Err(Interrupted);
        }
        self.rt.block_on(async {
            tokio::select! {
                out = fut => Ok(out),
                _ = crate::interrupt::wait() => Err(Interrupted),
            }
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.handle()
    }
}
