//! A test component that is not an edgeward rule at all: another package's
//! world, which imports nothing of edgeward and exports `greet`. The
//! gateway must refuse it at load time, saying what a rule exports.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        inline: r#"
            package acme:greeter@1.0.0;

            world greeter {
                export greet: func(name: string) -> string;
            }
        "#,
        world: "greeter",
    });

    struct Greeter;

    impl Guest for Greeter {
        fn greet(name: String) -> String {
            format!("hello, {name}")
        }
    }

    export!(Greeter);
}
