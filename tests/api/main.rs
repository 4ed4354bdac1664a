//! Integration suite: the real server over HTTP, on SQLite by default and on PostgreSQL
//! with `PORTCULLIS_TEST_DATABASE=postgres`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod admin;
mod algorithms;
mod authorize;
mod backend;
mod bad_input;
mod cli;
mod cluster;
mod console;
mod console_browser;
mod console_people;
mod console_platform;
mod console_sso;
mod console_tenant;
mod demo;
mod discovery;
mod dpop;
mod fairness;
mod fapi_peer;
mod fapi_profile;
mod federation;
mod first_party;
mod flow;
mod helpers;
mod hostile_tokens;
mod isolation;
mod keys;
mod lockout;
mod logout;
mod mfa;
mod openapi;
mod parameters;
mod passkeys;
mod private_key_jwt;
mod protection;
mod pushed_requests;
mod rbac_and_keys;
mod registration;
mod relying_parties;
mod retention;
mod review;
mod saml_interop;
mod smtp;
mod tokens;
