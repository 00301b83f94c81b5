//! The client pod: its name ([`name`]); the operator's template ([`template`], checked against
//! the Pod [`schema`]); its shape ([`shape`]) with the event as a file ([`event_file`]); and
//! whether the admitted pod is routed through its gateway ([`routing`]).

pub mod event_file;
pub mod lifecycle;
pub mod name;
pub mod routing;
pub mod schema;
pub mod shape;
pub mod template;
