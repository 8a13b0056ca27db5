//! A test component built against a later contract, `edgeward:policy@0.3.0`,
//! rather than the SDK: the gateway must refuse it at load time, naming the
//! version it has and the one the gateway supports. Its shape is invented;
//! only the package version matters.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        inline: r#"
            package edgeward:policy@0.3.0;

            interface log {
                enum level { trace, debug, info, warn, error }
                log: func(level: level, msg: string);
            }

            world rule {
                import log;
                export init: func(config: string) -> result<_, string>;
                export process: func(msg: list<u8>) -> result<list<u8>, string>;
                export tick: func(now-ms: u64) -> result<_, string>;
            }
        "#,
        world: "rule",
    });

    use edgeward::policy::log::{Level, log};

    struct Next;

    impl Guest for Next {
        fn init(_config: String) -> Result<(), String> {
            // Calling the import keeps it in the component's imports.
            log(Level::Info, "contract 0.3.0");
            Ok(())
        }
        fn process(msg: Vec<u8>) -> Result<Vec<u8>, String> {
            Ok(msg)
        }
        fn tick(_now_ms: u64) -> Result<(), String> {
            Ok(())
        }
    }

    export!(Next);
}
