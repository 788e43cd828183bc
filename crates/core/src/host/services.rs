//! The vendor services of a run: the runtime, the vendor clients (built on first use) and,
//! in a rehearsal, the simulated dashboard that performs what a person would.

use super::dashboard::Dashboard;
use crate::runtime::Runtime;
use runbook_vendors::{VendorConfig, VendorError, Vendors};
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::thread::JoinHandle;

pub struct Services {
    pub runtime: Runtime,
    config: VendorConfig,
    vendors: OnceCell<Vendors>,
    /// The clients being built on another thread (`prepare`), taken by the first call.
    building: RefCell<Option<JoinHandle<Result<Vendors, VendorError>>>>,
    /// A rehearsal's simulated dashboard: its steps are performed through it.
    dashboard: Option<Rc<dyn Dashboard>>,
    /// What the clients ask before sending a write again, once they are built.
    fence: RefCell<Option<runbook_vendors::WriteFence>>,
}

impl Services {
    pub fn new(
        runtime: Runtime,
        config: VendorConfig,
        dashboard: Option<Rc<dyn Dashboard>>,
    ) -> Self {
        Services {
            runtime,
            config,
            vendors: OnceCell::new(),
            building: RefCell::new(None),
            dashboard,
            fence: RefCell::new(None),
        }
    }

    /// Starts building the clients on another thread, for a command that will call a
    /// vendor. Building them is quick; the system's TLS roots, which are not, are read on a
    /// thread of their own when a vendor is reached over https (`Vendors::new`), and never
    /// for a rehearsal on loopback.
    pub fn prepare(&self) {
        if self.vendors.get().is_some() || self.building.borrow().is_some() {
            return;
        }
        let config = self.config.clone();
        let handle = std::thread::Builder::new()
            .name("runbook-clients".into())
            .spawn(move || Vendors::new(config));
        // A thread that cannot start: the first call builds them, as without `prepare`.
        if let Ok(handle) = handle {
            *self.building.borrow_mut() = Some(handle);
        }
    }

    pub fn config(&self) -> &VendorConfig {
        &self.config
    }

    /// The simulated dashboard of a rehearsal, if this run has one.
    pub fn dashboard(&self) -> Option<&dyn Dashboard> {
        self.dashboard.as_deref()
    }

    /// What the clients ask before they send a write again (a retry): whether this run
    /// still holds its lock.
    pub fn fence_writes(&self, fence: runbook_vendors::WriteFence) {
        match self.vendors.get() {
            Some(v) => v.transport().fence_writes(fence),
            None => *self.fence.borrow_mut() = Some(fence),
        }
    }

    /// The clients if a call has built them (nothing is built to answer).
    pub fn built_vendors(&self) -> Option<&Vendors> {
        self.vendors.get()
    }

    /// The clients, built on first use so commands that never call a vendor never pay for it.
    pub fn vendors(&self) -> Result<&Vendors, VendorError> {
        if let Some(v) = self.vendors.get() {
            return Ok(v);
        }
        let building = self.building.borrow_mut().take();
        let v = match building.map(JoinHandle::join) {
            Some(Ok(built)) => built?,
            // Not started, or its thread panicked: build them here (a panic repeats, visibly).
            Some(Err(_)) | None => Vendors::new(self.config.clone())?,
        };
        if let Some(d) = &self.dashboard {
            d.share_transport(v.transport());
        }
        if let Some(fence) = self.fence.borrow_mut().take() {
            v.transport().fence_writes(fence);
        }
        Ok(self.vendors.get_or_init(|| v))
    }
}
