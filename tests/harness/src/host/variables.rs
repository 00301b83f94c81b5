//! `fermyon:spin/variables@2.0.0`, answered from the resolved component variables.

use std::collections::BTreeMap;
use std::sync::Arc;

wasmtime::component::bindgen!({
    inline: r#"
        package fermyon:spin@2.0.0;

        interface variables {
            variant error {
                invalid-name(string),
                undefined(string),
                provider(string),
                other(string),
            }
            get: func(name: string) -> result<string, error>;
        }

        world host {
            import variables;
        }
    "#,
    world: "host",
});

pub use fermyon::spin::variables::add_to_linker;
use fermyon::spin::variables::{Error, Host};

/// One component's variables, as Spin's resolver sees them.
pub struct ComponentVariables {
    pub component_id: Arc<str>,
    pub values: Arc<BTreeMap<String, String>>,
}

impl Host for ComponentVariables {
    fn get(&mut self, name: String) -> Result<String, Error> {
        if let Some(reason) = crate::manifest::key_error(&name) {
            return Err(Error::InvalidName(format!("{name:?}: {reason}")));
        }
        self.values
            .get(&name)
            .cloned()
            .ok_or_else(|| Error::Undefined(format!("no variable for {:?}.{name:?}", &*self.component_id)))
    }
}
