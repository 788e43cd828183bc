//! One tokio runtime per process, owned by a synchronous `main`: rhai host functions are
//! synchronous and block on async vendor calls, racing them against Ctrl-C.

use std::future::Future;

/// Why a call was abandoned: the operator pressed Ctrl-C, or the budget of the step (or
/// load) ran out (the termination token says which and why).
#[derive(Debug, Clone)]
pub enum Interrupted {
    CtrlC,
    TimedOut(String),
}

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

    /// Whether anything may still be sent: not after Ctrl-C or a spent budget.
    pub fn check(&self) -> Result<(), Interrupted> {
        if crate::interrupt::is_set() {
            return Err(Interrupted::CtrlC);
        }
        if let Some(token) = crate::interrupt::over_budget() {
            return Err(Interrupted::TimedOut(token));
        }
        Ok(())
    }

    /// The output of a task that has finished (`JoinHandle::is_finished`): there is nothing
    /// to wait for, so neither Ctrl-C nor a spent budget withholds it.
    pub fn finished<T>(
        &self,
        task: &mut tokio::task::JoinHandle<T>,
    ) -> Result<T, tokio::task::JoinError> {
        debug_assert!(
            task.is_finished(),
            "Runtime::finished on a task still running"
        );
        self.rt.block_on(task)
    }

    /// Runs a future to completion, or gives up on it when Ctrl-C is pressed or the budget
    /// in force runs out.
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, Interrupted> {
        self.check()?;
        let deadline = crate::interrupt::budget_deadline();
        self.rt.block_on(async {
            let spent = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                out = fut => Ok(out),
                _ = crate::interrupt::wait() => Err(Interrupted::CtrlC),
                _ = spent => Err(Interrupted::TimedOut(
                    crate::interrupt::over_budget().unwrap_or_else(|| crate::interrupt::TIMED_OUT.to_string()),
                )),
            }
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.handle()
    }
}
