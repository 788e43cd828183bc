//! Building the rhai `Engine`: limits, module resolution, print/debug routing, and how host
//! functions are registered (their metadata, and modules shared by every engine).

pub mod registry;
pub mod resolver;

pub use crate::diagnostic::{ScriptError, Sources};
pub use registry::{Effect, HostFn, HostModules, Repeat};
pub(crate) use resolver::Resolver;

use crate::interrupt;
use rhai::{Dynamic, Engine};

/// Engine limits. Fixed numbers (not rhai's defaults, which differ between debug and release
/// builds) so a script that passes in tests passes in production.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_fn_expr_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_modules: usize,
    pub max_variables: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 5_000_000,
            max_call_levels: 48,
            max_expr_depth: 64,
            max_fn_expr_depth: 48,
            max_string_size: 1 << 20,
            // rhai counts the elements of nested arrays too, and re-counts (and copies) a
            // nested value on each change: `loop { a = [a] }` costs the square of this.
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_modules: 32,
            max_variables: 1_000,
        }
    }
}

pub use crate::interrupt::{ABORTED, INTERRUPTED};

thread_local! {
    static STANDARD: rhai::Shared<rhai::Module> = {
        use rhai::packages::Package;
        rhai::packages::StandardPackage::new().as_shared_module()
    };
}

fn standard_package() -> rhai::Shared<rhai::Module> {
    STANDARD.with(|m| m.clone())
}

/// A rhai engine with our limits and safety settings, but no host modules yet.
pub(crate) fn new_engine(limits: Limits, resolver: Resolver) -> Engine {
    // Engine::new() builds the standard package afresh each time, which was half the cost
    // of loading a runbook (callgrind); every engine of this process shares one copy.
    let mut engine = Engine::new_raw();
    engine
        .set_max_strings_interned(1024)
        .register_global_module(standard_package());
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_fn_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_modules(limits.max_modules)
        .set_max_variables(limits.max_variables)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        .set_module_resolver(resolver);
    // `eval` would let a script compile code the checker never saw.
    engine.disable_symbol("eval");
    // rhai reserves words for future syntax (`default`, `go`, `match`, `new`...); runbooks
    // need them as map keys and names (`#{ default: 1 }`, `ctx.go`), so they become identifiers.
    // The API is stable in practice; rhai marks it deprecated only to flag it as volatile.
    #[allow(deprecated)]
    engine.on_parse_token(|token, _, _| match token {
        rhai::Token::Reserved(ref word) if word.chars().all(|c| c.is_ascii_alphabetic()) => {
            rhai::Token::Identifier(word.clone())
        }
        other => other,
    });
    engine.on_progress(|ops| {
        if interrupt::is_set() {
            return Some(Dynamic::from(INTERRUPTED));
        }
        // The clock is read every 1024 operations: often enough to stop a busy loop
        // promptly, rarely enough to cost nothing.
        if ops % 1024 == 0 {
            return interrupt::over_budget().map(Dynamic::from);
        }
        None
    });
    engine
}

/// Sends what scripts `print` (and `debug`) to `to`.
pub(crate) fn print_to(engine: &mut Engine, to: impl Fn(&str) + Clone + Send + Sync + 'static) {
    let debug = to.clone();
    engine.on_print(to);
    engine.on_debug(move |text, _source, _pos| debug(text));
}
