//! Typed async clients for each vendor (no rhai here).
