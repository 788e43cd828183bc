//! One tokio runtime per process, owned by a synchronous `main`: rhai host functions are
//! synchronous and block on async vendor calls, racing them against Ctrl-C.

use std::future::Future;
use std::mem::ManuallyDrop;

/// Why a call was abandoned: the operator pressed Ctrl-C, or the budget of the step (or
/// load) ran out (the termination token says which and why).
#[derive(Debug, Clone)]
pub enum Interrupted {
    CtrlC,
    TimedOut(String),
}

pub struct Runtime {
    rt: ManuallyDrop<tokio::runtime::Runtime>,
}

impl Drop for Runtime {
    /// Its workers are told to stop, not waited for: its tasks are dropped either way, and
    /// the wait (joining each worker thread) was 1.2 ms of every rotation's end. Blocking
    /// work still running (a lock file's read) is left to finish on its own. It is dropped
    /// as the command ends; the process's exit ends the threads.
    fn drop(&mut self) {
        // SAFETY: taken once, here; nothing uses `rt` after its owner's drop.
        let rt = unsafe { ManuallyDrop::take(&mut self.rt) };
        rt.shutdown_background();
    }
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
        Ok(Runtime {
            rt: ManuallyDrop::new(rt),
        })
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
        // The vendors' client knows when the step ends: a wait a vendor asks for that would
        // outlast it is not waited, and the vendor's refusal stands as the answer.
        let fut = runbook_vendors::transport::within_step(crate::interrupt::budget_end(), fut);
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

#[cfg(test)]
mod tests {
    use super::Runtime;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A command's end drops its runtime: that drop does not wait for work still running on
    /// it (a drop that waited here would never end: the work is let go only after it).
    #[test]
    fn dropping_the_runtime_does_not_wait_for_its_work() {
        let rt = Runtime::new().unwrap();
        let (let_go, held) = mpsc::channel::<()>();
        let (running, started) = mpsc::channel::<()>();
        rt.handle().spawn_blocking(move || {
            running.send(()).unwrap();
            let _ = held.recv();
        });
        started.recv().unwrap();
        let (dropped, ended) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            drop(rt);
            let _ = dropped.send(());
        });
        // Not a measure of speed: a bound on a hang.
        let ended = ended.recv_timeout(Duration::from_secs(60)).is_ok();
        drop(let_go);
        assert!(ended, "dropping the runtime waited for the work on it");
    }
}
