//! The client pod: its name ([`name`]) and its shape ([`shape`]).

pub mod name;
pub mod shape;
