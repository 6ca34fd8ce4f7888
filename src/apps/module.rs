//! A module checked against the ABI (`spec/apps.md` section 2) before anything runs: it
//! validates, imports only the host functions with their signatures, and exports what the
//! functions it imports require.

use std::fmt;

use wasmi::{Config, Engine, ExternType, Module, ValType};

/// Why a module is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleError {
    /// Not WebAssembly, or fails validation.
    Invalid(String),
    /// An import the host does not provide.
    UnknownImport {
        /// Its module name.
        module: String,
        /// Its field name.
        name: String,
    },
    /// A host function imported with another signature.
    WrongImportSignature {
        /// The function.
        name: &'static str,
        /// Its signature in the ABI.
        expected: &'static str,
    },
    /// A required export is missing or has another type.
    MissingExport {
        /// The export.
        name: &'static str,
        /// Its type in the ABI.
        expected: &'static str,
        /// Why it is required.
        because: &'static str,
    },
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleError::Invalid(e) => write!(f, "the module is not valid WebAssembly: {e}"),
            ModuleError::UnknownImport { module, name } => write!(
                f,
                "the module imports `{module}`.`{name}`, which the host does not provide (it \
                 provides exo.log, exo.now_us, exo.set_timer and exo.send)"
            ),
            ModuleError::WrongImportSignature { name, expected } => write!(
                f,
                "the module imports exo.{name} with the wrong signature: expected {expected}"
            ),
            ModuleError::MissingExport {
                name,
                expected,
                because,
            } => write!(
                f,
                "the module does not export `{name}` as {expected}, which it must {because}"
            ),
        }
    }
}

impl std::error::Error for ModuleError {}

/// The engine every app of a host shares: fuel metering on, so every call is bounded.
pub fn engine() -> Engine {
    let mut config = Config::default();
    config.consume_fuel(true);
    Engine::new(&config)
}

/// A module that follows the ABI, ready to instantiate.
#[derive(Debug, Clone)]
pub struct AppModule {
    pub(crate) module: Module,
    /// It imports `set_timer` (so it exports `on_timer`).
    pub uses_timer: bool,
    /// It imports `send` (so it exports `alloc` and `on_message`).
    pub uses_send: bool,
}

use ValType::{I32, I64};

/// The host functions: name, parameters, results, signature as text.
const IMPORTS: &[(&str, &[ValType], &[ValType], &str)] = &[
    ("log", &[I32, I32, I32], &[], "(i32, i32, i32) -> ()"),
    ("now_us", &[], &[I64], "() -> i64"),
    ("set_timer", &[I64], &[], "(i64) -> ()"),
    ("send", &[I32, I32], &[I32], "(i32, i32) -> i32"),
];

impl AppModule {
    /// Validates `bytes` and checks imports and exports against the ABI.
    pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<AppModule, ModuleError> {
        let module = Module::new(engine, bytes).map_err(|e| ModuleError::Invalid(e.to_string()))?;
        let mut uses_timer = false;
        let mut uses_send = false;
        for import in module.imports() {
            let known = IMPORTS
                .iter()
                .find(|(name, ..)| import.module() == "exo" && import.name() == *name);
            let Some((name, params, results, text)) = known else {
                return Err(ModuleError::UnknownImport {
                    module: import.module().to_string(),
                    name: import.name().to_string(),
                });
            };
            let fits = matches!(import.ty(), ExternType::Func(f) if f.params() == *params && f.results() == *results);
            if !fits {
                return Err(ModuleError::WrongImportSignature {
                    name,
                    expected: text,
                });
            }
            uses_timer |= *name == "set_timer";
            uses_send |= *name == "send";
        }
        let func = |name: &str, params: &[ValType], results: &[ValType]| matches!(module.get_export(name), Some(ExternType::Func(f)) if f.params() == params && f.results() == results);
        let mut required = vec![
            (
                "memory",
                "a memory",
                "always",
                matches!(module.get_export("memory"), Some(ExternType::Memory(_))),
            ),
            (
                "init",
                "a function () -> ()",
                "always",
                func("init", &[], &[]),
            ),
        ];
        if uses_timer {
            required.push((
                "on_timer",
                "a function () -> ()",
                "because it imports exo.set_timer",
                func("on_timer", &[], &[]),
            ));
        }
        if uses_send {
            required.push((
                "alloc",
                "a function (i32) -> i32",
                "because it imports exo.send",
                func("alloc", &[I32], &[I32]),
            ));
            required.push((
                "on_message",
                "a function (i32, i32) -> ()",
                "because it imports exo.send",
                func("on_message", &[I32, I32], &[]),
            ));
        }
        if let Some((name, expected, because, _)) = required.into_iter().find(|r| !r.3) {
            return Err(ModuleError::MissingExport {
                name,
                expected,
                because,
            });
        }
        Ok(AppModule {
            module,
            uses_timer,
            uses_send,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(wat: &str) -> Result<AppModule, ModuleError> {
        AppModule::compile(&engine(), &wat::parse_str(wat).unwrap())
    }

    #[test]
    fn garbage_and_invalid_modules_are_refused() {
        let err = AppModule::compile(&engine(), b"not wasm").unwrap_err();
        assert!(matches!(err, ModuleError::Invalid(_)), "{err}");
        // Type error: i64 returned where i32 is declared.
        let err = AppModule::compile(
            &engine(),
            &wat::parse_str(r#"(module (func (result i32) (i64.const 1)))"#).unwrap(),
        );
        assert!(matches!(err, Err(ModuleError::Invalid(_))));
    }

    #[test]
    fn imports_and_exports_follow_the_abi() {
        let err = compile(r#"(module (import "env" "x" (func)) (memory (export "memory") 1) (func (export "init")))"#).unwrap_err();
        assert!(err.to_string().contains("`env`.`x`"), "{err}");
        let err = compile(r#"(module (import "exo" "log" (func (param i32))) (memory (export "memory") 1) (func (export "init")))"#).unwrap_err();
        assert!(
            err.to_string().contains("exo.log with the wrong signature"),
            "{err}"
        );
        let err = compile(r#"(module (memory (export "memory") 1))"#).unwrap_err();
        assert!(err.to_string().contains("`init`"), "{err}");
        let err = compile(r#"(module (import "exo" "send" (func (param i32 i32) (result i32))) (memory (export "memory") 1) (func (export "init")))"#).unwrap_err();
        assert!(
            err.to_string().contains("`alloc`") && err.to_string().contains("exo.send"),
            "{err}"
        );
        let ok = compile(r#"(module (import "exo" "set_timer" (func (param i64))) (memory (export "memory") 1) (func (export "init")) (func (export "on_timer")))"#).unwrap();
        assert!(ok.uses_timer && !ok.uses_send);
    }
}
