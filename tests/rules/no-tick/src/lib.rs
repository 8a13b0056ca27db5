//! A test component that exports `init` and `process` of
//! `edgeward:policy@0.2.0` but not `tick`: the gateway must refuse it at
//! load time, naming the missing export. Built with wit-bindgen directly
//! (the SDK always exports all three) from the SDK's own WIT plus a world
//! in `wit/` that leaves `tick` out.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: ["../../../sdk/wit", "wit"],
        world: "edgeward-test:no-tick/rule",
        // The interfaces come from the SDK's package: generate them here too.
        generate_all,
    });

    // The world `use`s `message` and `outcome`, so they are already in scope.
    use edgeward::policy::types::{Effects, Verdict};

    struct NoTick;

    impl Guest for NoTick {
        fn init(_config: String) -> Result<(), String> {
            Ok(())
        }
        fn process(_msg: &Message) -> Result<Outcome, String> {
            let effects = Effects { alarms: Vec::new(), commands: Vec::new() };
            Ok(Outcome { verdict: Verdict::Forward, effects })
        }
    }

    export!(NoTick);
}
