//! Peer engines, built with the `peers` feature.

pub mod mdbx;
pub mod redb;
pub mod rocks;
