//! A site's rules around the file lookup (`[[site.*]]` in the configuration): on the way
//! in, redirects (`redirect`) and who may ask (`access`, `auth`); at the lookup, clean
//! URLs, index files, listings and the SPA fallback (`tryfiles`, `listing`); on the way
//! out, error pages (`errors`) and headers by path (`headers`).
//!
//! One job per file, imports one way (this file only declares):
//! * `access` → `auth`: IP allow/deny and basic auth by path;
//! * `auth`: Basic credentials against bcrypt/argon2 hashes, successful checks cached;
//! * `errors` → `files`, `path`: the error page of a status;
//! * `headers`: set/add/remove/default by path, the default `Cache-Control`;
//! * `listing`: a directory as HTML or JSON;
//! * `redirect`: canonical host and redirect rules;
//! * `tryfiles` → `files`, `path`: which file answers a path.

pub(crate) mod access;
pub(crate) mod auth;
pub(crate) mod errors;
pub(crate) mod headers;
pub(crate) mod listing;
pub(crate) mod redirect;
pub(crate) mod tryfiles;
