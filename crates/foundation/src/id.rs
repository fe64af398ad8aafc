//! Node identifiers (defined in the sans-IO proto crate).

pub use foundation_proto::NodeId;
