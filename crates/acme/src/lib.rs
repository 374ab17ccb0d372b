//! graced-acme
