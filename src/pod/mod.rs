//! The client pod: its name ([`name`]), its shape ([`shape`]) and whether the admitted pod is
//! routed through its gateway ([`routing`]).

pub mod name;
pub mod routing;
pub mod shape;
