//! Simulated vendor APIs on loopback, the simulated downstream app and fault injection.
