//! What host functions need at run time: the runtime, the vendor clients (built on first
//! use) and, in a rehearsal, where the simulated dashboard takes its control requests.

use crate::runtime::Runtime;
use runbook_vendors::{VendorConfig, VendorError, Vendors};
use std::cell::OnceCell;

pub struct Services {
    pub runtime: Runtime,
    config: VendorConfig,
    vendors: OnceCell<Vendors>,
    /// The simulated Postmark's base URL when the run rehearses against a sandbox: the
    /// dashboard steps are then performed through its control routes.
    dashboard: Option<String>,
}

impl Services {
    pub fn new(runtime: Runtime, config: VendorConfig, dashboard: Option<String>) -> Self {
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

    /// The simulated dashboard of an in-process sandbox, if this run has one.
    pub fn dashboard(&self) -> Option<&str> {
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
