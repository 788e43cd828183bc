//! What host functions need at run time: the runtime, the vendor clients (built on first
//! use) and, under `--sandbox`, the simulators.

use crate::runtime::Runtime;
use crate::sandbox::Sandbox;
use crate::vendors::{VendorConfig, VendorError, Vendors};
use std::cell::OnceCell;

pub struct Services {
    pub runtime: Runtime,
    config: VendorConfig,
    vendors: OnceCell<Vendors>,
    pub sandbox: Option<Sandbox>,
}

impl Services {
    pub fn new(runtime: Runtime, config: VendorConfig, sandbox: Option<Sandbox>) -> Self {
        Services {
            runtime,
            config,
            vendors: OnceCell::new(),
            sandbox,
        }
    }

    pub fn config(&self) -> &VendorConfig {
        &self.config
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
