//! `runbook`: runs operational runbooks written as rhai scripts.

pub mod sandbox;
pub mod secret;
pub mod vendors;
