//! The node
