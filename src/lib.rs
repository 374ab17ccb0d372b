//! graced: a systemd-native static web server that keeps Apache's signal contract.
pub mod config;
