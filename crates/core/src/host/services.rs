//! The vendor services of a run: the runtime, the vendor clients (built on first use) and,
//! in a rehearsal, the simulated dashboard that performs what a person would.

use super::dashboard::Dashboard;
use crate::runtime::Runtime;
use runbook_vendors::{VendorConfig, VendorError, Vendors};
use std::cell::OnceCell;
use std::rc::Rc;

pub struct Services {
    pub runtime: Runtime,
    config: VendorConfig,
    vendors: OnceCell<Vendors>,
    /// A rehearsal's simulated dashboard: its steps are performed through it.
    dashboard: Option<Rc<dyn Dashboard>>,
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
            dashboard,
        }
    }

    pub fn config(&self) -> &VendorConfig {
        &self.config
    }

    /// The simulated dashboard of a rehearsal, if this run has one.
    pub fn dashboard(&self) -> Option<&dyn Dashboard> {
        self.dashboard.as_deref()
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
        let v = Vendors::new(self.config.clone())?;
        Ok(self.vendors.get_or_init(|| v))
    }
}
